/**
 * A minimal pipelined Redis (RESP2) client, enough for EVALSHA/SCRIPT LOAD/GET: commands are
 * written as they come and replies matched in order. Kept here so the Redis baseline needs no
 * extra npm dependency; it is as lean as a client gets, which flatters the baseline, not us.
 */
import { createConnection, type Socket } from "node:net";

export type Reply = string | number | null | Reply[] | Error;

export interface RespClient {
  send(args: readonly (string | number)[]): Promise<Reply>;
  close(): void;
}

export function connectResp(port: number, host = "127.0.0.1"): Promise<RespClient> {
  return new Promise((resolve, reject) => {
    const socket: Socket = createConnection({ port, host }, () => resolve(client));
    socket.setNoDelay(true);
    socket.once("error", reject);
    const waiting: ((r: Reply) => void)[] = [];
    let buf: Buffer = Buffer.alloc(0);
    let pos = 0;

    /** Parses one reply at `pos`; undefined when the buffer does not hold all of it yet. */
    const parse = (): Reply | undefined => {
      const eol = buf.indexOf("\r\n", pos);
      if (eol < 0) return undefined;
      const type = String.fromCharCode(buf[pos] ?? 0);
      const line = buf.toString("latin1", pos + 1, eol);
      const start = pos;
      pos = eol + 2;
      switch (type) {
        case "+":
          return line;
        case "-":
          return new Error(line);
        case ":":
          return Number(line);
        case "$": {
          const n = Number(line);
          if (n < 0) return null;
          if (buf.length < pos + n + 2) {
            pos = start;
            return undefined;
          }
          const s = buf.toString("utf8", pos, pos + n);
          pos += n + 2;
          return s;
        }
        case "*": {
          const n = Number(line);
          if (n < 0) return null;
          const items: Reply[] = [];
          for (let i = 0; i < n; i++) {
            const item = parse();
            if (item === undefined) {
              pos = start;
              return undefined;
            }
            items.push(item);
          }
          return items;
        }
        default:
          throw new Error(`bad RESP type ${type}`);
      }
    };

    socket.on("data", (chunk: Buffer) => {
      buf = pos < buf.length ? Buffer.concat([buf.subarray(pos), chunk]) : chunk;
      pos = 0;
      for (;;) {
        const reply = parse();
        if (reply === undefined) break;
        waiting.shift()?.(reply);
      }
    });

    const client: RespClient = {
      send(args) {
        let out = `*${args.length}\r\n`;
        for (const a of args) {
          const s = String(a);
          out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
        }
        socket.write(out);
        return new Promise((res) => waiting.push(res));
      },
      close: () => socket.destroy(),
    };
  });
}
