/**
 * A TCP proxy in front of the sidecar that can hold back the server's replies: requests still
 * reach the server (and commit), but answers are buffered until `resume()`, which is how a reply
 * lost past the client's deadline looks from the client. `cut()` drops every connection and
 * refuses new ones until `restore()`: the network between client and sidecar gone, while the
 * sidecar keeps serving everyone else.
 */
import { createServer, connect, type AddressInfo, type Socket } from "node:net";

export interface PausableProxy {
  readonly address: string;
  pause(): void;
  resume(): void;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startPausableProxy(upstream: string): Promise<PausableProxy> {
  const colon = upstream.lastIndexOf(":");
  const host = upstream.slice(0, colon);
  const port = Number(upstream.slice(colon + 1));
  let paused = false;
  let cutOff = false;
  const held: { socket: Socket; chunk: Buffer }[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    if (cutOff) {
      client.destroy();
      return;
    }
    const up = connect(port, host);
    sockets.add(client).add(up);
    client.on("data", (chunk) => up.write(chunk));
    up.on("data", (chunk: Buffer) => (paused ? held.push({ socket: client, chunk }) : client.write(chunk)));
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on("close", end).on("error", end);
    up.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port: own } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${own}`,
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
      for (const { socket, chunk } of held.splice(0)) if (!socket.destroyed) socket.write(chunk);
    },
    cut: () => {
      cutOff = true;
      for (const s of sockets) s.destroy();
    },
    restore: () => {
      cutOff = false;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
