/**
 * deploy/: the kustomize base and the pvc overlay render, every object passes the Kubernetes
 * schema offline, and the properties the sidecar depends on hold (native sidecar, directory
 * mount, health port, loopback API, security context, shutdown budget, one policy name).
 */
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { IContainer, IPodSpec, IVolume } from "kubernetes-models/v1";
import { describe, expect, it } from "vitest";
import { SERVE_OPTIONS, configWarnings, parseServeConfig } from "../../src/cli/config.js";
import { loadPolicy } from "../../src/policy/index.js";
import { renderKustomize, type K8sObject } from "./render-kustomize.js";
import { validateK8s } from "./validate-k8s.js";

interface Rendered {
  readonly objects: K8sObject[];
  readonly pod: IPodSpec;
  readonly sidecar: IContainer;
  readonly app: IContainer;
  readonly volume: (name: string) => IVolume;
  readonly flag: (name: string) => string;
  readonly byKind: (kind: string) => K8sObject;
}

function render(dir: string): Rendered {
  const objects = renderKustomize(dir);
  const byKind = (kind: string): K8sObject => {
    const found = objects.filter((o) => o.kind === kind);
    expect(found, `exactly one ${kind}`).toHaveLength(1);
    return found[0] as K8sObject;
  };
  const deployment = byKind("Deployment") as unknown as { spec: { template: { spec: IPodSpec } } };
  const pod = deployment.spec.template.spec;
  const sidecar = (pod.initContainers ?? []).find((c) => c.name === "limitr-sidecar");
  const app = pod.containers.find((c) => c.name === "app");
  if (!sidecar || !app) throw new Error("the pod needs an init container limitr-sidecar and a container app");
  const volume = (name: string): IVolume => {
    const v = (pod.volumes ?? []).find((x) => x.name === name);
    if (!v) throw new Error(`no volume ${name}`);
    return v;
  };
  const flag = (name: string): string => {
    const prefix = `--${name}=`;
    const arg = (sidecar.args ?? []).find((a) => a.startsWith(prefix));
    if (arg === undefined) throw new Error(`sidecar has no ${prefix}…`);
    return arg.slice(prefix.length);
  };
  return { objects, pod, sidecar, app, volume, flag, byKind };
}

const DRAIN_MARGIN_MS = 5_000;

describe.each([
  ["deploy/base", "emptyDir"],
  ["deploy/overlays/pvc", "persistentVolumeClaim"],
] as const)("%s", (dir, dataSource) => {
  const r = render(dir);

  it("renders objects that all pass the Kubernetes schema", () => {
    expect(r.objects.map((o) => o.kind).sort()).toEqual(dataSource === "emptyDir" ? ["ConfigMap", "Deployment"] : ["ConfigMap", "Deployment", "PersistentVolumeClaim"]);
    for (const o of r.objects) expect(() => validateK8s(o), `${o.kind} ${o.metadata.name}`).not.toThrow();
  });

  it("runs limitr-sidecar as a native sidecar (init container, restartPolicy Always) started before the app", () => {
    expect(r.sidecar.restartPolicy).toBe("Always");
    expect(r.pod.containers.some((c) => c.name === "limitr-sidecar")).toBe(false);
    // The startup probe is what holds the app back until the sidecar serves.
    expect(r.sidecar.startupProbe?.grpc).toBeDefined();
  });

  it("only passes flags the CLI knows", () => {
    const known = new Set(Object.values(SERVE_OPTIONS).map((o) => `--${o.flag}`));
    const [sub, ...flags] = r.sidecar.args ?? [];
    expect(sub).toBe("serve");
    for (const f of flags) expect(known, f).toContain(f.split("=")[0]);
  });

  it("passes flags that parse, and that draw no configuration warning (the event log fits the data budget)", () => {
    const [, ...flags] = r.sidecar.args ?? [];
    const config = parseServeConfig(flags, {});
    expect(config.maxDataBytes).toBeDefined();
    expect(configWarnings(config)).toEqual([]);
  });

  it("mounts the policy ConfigMap as a directory, never with subPath, and it is the one kustomize generates", () => {
    const policy = r.volume("policy");
    const configMap = r.byKind("ConfigMap") as K8sObject & { data: Record<string, string> };
    expect(policy.configMap?.name).toBe(configMap.metadata.name);
    expect(configMap.metadata.name).toBe("limitr-policy");
    for (const c of [...(r.pod.initContainers ?? []), ...r.pod.containers]) {
      for (const m of c.volumeMounts ?? []) {
        if (m.name === "policy") expect(m.subPath ?? m.subPathExpr, `${c.name} mounts the policy with subPath`).toBeUndefined();
      }
    }
    const mount = r.sidecar.volumeMounts?.find((m) => m.name === "policy");
    const policyFile = r.flag("policy");
    expect(mount?.mountPath).toBe(dirname(policyFile));
    expect(mount?.readOnly).toBe(true);
    const key = policyFile.slice(dirname(policyFile).length + 1);
    const text = configMap.data[key];
    expect(text, `ConfigMap key ${key}`).toBeDefined();
    expect(text).toBe(readFileSync("examples/policies/combined.yaml", "utf8"));
    const compiled = loadPolicy(text ?? "", { version: "deploy" });
    expect(compiled.ok ? [] : compiled.issues).toEqual([]);
  });

  it(`keeps LMDB on ${dataSource}`, () => {
    const data = r.volume("data");
    const dataMount = r.sidecar.volumeMounts?.find((m) => m.name === "data");
    expect(dataMount?.mountPath).toBe(r.flag("data-dir"));
    if (dataSource === "emptyDir") {
      expect(data.emptyDir).toBeDefined();
      expect(data.persistentVolumeClaim).toBeUndefined();
    } else {
      // Exactly one volume source: the patch must replace the emptyDir, not add beside it.
      expect(data.emptyDir).toBeUndefined();
      expect(data.persistentVolumeClaim?.claimName).toBe(r.byKind("PersistentVolumeClaim").metadata.name);
      const spec = (r.byKind("Deployment") as unknown as { spec: { replicas: number; strategy: { type: string } } }).spec;
      expect(spec.replicas).toBe(1);
      expect(spec.strategy.type).toBe("Recreate");
    }
  });

  it("probes grpc.health.v1 on a health port bound to all interfaces, while the API stays on loopback", () => {
    const [host, port] = r.flag("health-address").split(":");
    expect(host).toBe("0.0.0.0");
    for (const probe of [r.sidecar.livenessProbe, r.sidecar.readinessProbe, r.sidecar.startupProbe]) {
      expect(probe?.grpc?.port).toBe(Number(port));
      expect(probe?.httpGet ?? probe?.tcpSocket ?? probe?.exec).toBeUndefined();
    }
    // Only the health and operator (metrics) ports are declared: the APIs are loopback-only.
    const [metricsHost, metricsPort] = r.flag("metrics-address").split(":");
    expect(metricsHost).toBe("0.0.0.0");
    expect(r.sidecar.ports?.map((p) => p.containerPort)).toEqual([Number(port), Number(metricsPort)]);
    const template = (r.byKind("Deployment") as unknown as { spec: { template: { metadata?: { annotations?: Record<string, string> } } } }).spec.template;
    expect(template.metadata?.annotations?.["prometheus.io/port"]).toBe(metricsPort);
    expect(r.flag("grpc-address")).toBe("127.0.0.1:50051");
    expect(r.flag("http-address")).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.app.env?.find((e) => e.name === "LIMITR_ADDRESS")?.value).toBe(r.flag("grpc-address"));
  });

  it("hardens every container: read-only root, non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp", () => {
    expect(r.pod.automountServiceAccountToken).toBe(false);
    expect(r.pod.securityContext?.runAsNonRoot).toBe(true);
    expect(r.pod.securityContext?.seccompProfile?.type).toBe("RuntimeDefault");
    for (const c of [r.sidecar, r.app]) {
      const sc = c.securityContext;
      expect(sc?.readOnlyRootFilesystem, c.name).toBe(true);
      expect(sc?.runAsNonRoot ?? r.pod.securityContext?.runAsNonRoot, c.name).toBe(true);
      expect(sc?.allowPrivilegeEscalation, c.name).toBe(false);
      expect(sc?.capabilities?.drop, c.name).toEqual(["ALL"]);
      expect(sc?.capabilities?.add, c.name).toBeUndefined();
      expect(sc?.seccompProfile?.type ?? r.pod.securityContext?.seccompProfile?.type, c.name).toBe("RuntimeDefault");
    }
    // The UID the image creates, so runAsNonRoot can be verified and fsGroup owns the data.
    const dockerUser = /^USER\s+(\d+)/m.exec(readFileSync("deploy/Dockerfile", "utf8"))?.[1];
    expect(r.sidecar.securityContext?.runAsUser).toBe(Number(dockerUser));
    expect(r.pod.securityContext?.fsGroup).toBe(Number(dockerUser));
  });

  it("sets requests and limits for cpu and memory on every container", () => {
    for (const c of [r.sidecar, r.app]) {
      for (const kind of ["requests", "limits"] as const) {
        expect(c.resources?.[kind]?.cpu, `${c.name} ${kind}.cpu`).toBeDefined();
        expect(c.resources?.[kind]?.memory, `${c.name} ${kind}.memory`).toBeDefined();
      }
    }
  });

  it("gives the pod more termination time than the sidecar's drain", () => {
    const drainMs = Number(r.flag("shutdown-grace-ms"));
    expect(drainMs).toBeGreaterThan(0);
    expect((r.pod.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThanOrEqual(drainMs + DRAIN_MARGIN_MS);
  });
});

describe("the schema validator", () => {
  it("rejects a broken Deployment, so a passing validation means something", () => {
    const deployment = structuredClone(render("deploy/base").byKind("Deployment")) as unknown as {
      spec: { template: { spec: { initContainers: { readinessProbe: { grpc: { port: unknown } } }[] } } };
    };
    const sidecar = deployment.spec.template.spec.initContainers[0];
    if (!sidecar) throw new Error("no init container");
    sidecar.readinessProbe.grpc.port = "health";
    expect(() => validateK8s(deployment as unknown as K8sObject)).toThrow(/grpc\/port must be integer/);
  });

  it("deploy/base/policy.yaml is a byte-for-byte copy of examples/policies/combined.yaml", () => {
    expect(readFileSync("deploy/base/policy.yaml", "utf8")).toBe(readFileSync("examples/policies/combined.yaml", "utf8"));
  });
});
