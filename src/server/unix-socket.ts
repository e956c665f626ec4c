/**
 * The file side of a `unix:` listen address (docs/kubernetes.md puts it in an `emptyDir` shared
 * with the app). A process killed without closing its socket (kill -9, an OOM kill, the kubelet
 * after a failed liveness probe) leaves the file behind, and the volume outlives the container:
 * binding over it fails with EADDRINUSE, so the restarted container would crash-loop until the
 * pod is deleted. And the umask leaves a new socket 0755, while connecting needs write access,
 * so an app in the sidecar's group could not connect.
 */
import { connect } from "node:net";
import { chmod, lstat, unlink } from "node:fs/promises";

/** The socket path of a grpc-js `unix:` address (`unix:/abs`, `unix:///abs` or `unix:rel`), else undefined. */
export function unixSocketPath(address: string): string | undefined {
  if (!address.startsWith("unix:")) return undefined;
  const rest = address.slice("unix:".length);
  return rest.startsWith("//") ? rest.slice(2) : rest;
}

/**
 * Removes a socket file that nothing answers on. A file that is not a socket, or a socket a live
 * process accepts connections on, is left alone: the bind then fails and says why.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  try {
    if (!(await lstat(path)).isSocket()) return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  const stale = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(false);
    });
    // Only "nobody listens" makes it stale; any other failure (no permission) keeps it.
    probe.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
  if (!stale) return;
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

/** Lets the owner's group connect as well (read and write; nobody else). */
export async function shareWithGroup(path: string): Promise<void> {
  await chmod(path, 0o660);
}
