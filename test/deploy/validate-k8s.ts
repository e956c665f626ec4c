/**
 * Offline schema validation of rendered objects with kubernetes-models (the Kubernetes OpenAPI
 * schemas compiled to validators; no cluster, no network). It checks types, enums and required
 * fields; it does NOT reject unknown fields, so the manifest tests assert every field that
 * matters by its exact path as well.
 */
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1";
import { ConfigMap, PersistentVolumeClaim, type IConfigMap, type IPersistentVolumeClaim } from "kubernetes-models/v1";
import type { K8sObject } from "./render-kustomize.js";

/** Throws with the schema's message when `obj` is not a valid object of its kind. */
export function validateK8s(obj: K8sObject): void {
  const id = `${obj.apiVersion}/${obj.kind}`;
  switch (id) {
    case "apps/v1/Deployment":
      new Deployment(obj as unknown as IDeployment).validate();
      return;
    case "v1/ConfigMap":
      new ConfigMap(obj as unknown as IConfigMap).validate();
      return;
    case "v1/PersistentVolumeClaim":
      new PersistentVolumeClaim(obj as unknown as IPersistentVolumeClaim).validate();
      return;
    default:
      throw new Error(`no schema wired for ${id} (${obj.metadata.name}): add it here before using it`);
  }
}
