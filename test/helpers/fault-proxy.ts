/**
 * An HTTP reverse proxy on 127.0.0.1 in front of a test registry, with programmable faults, to test
 * kiln's retry and verification paths against real failures on the wire.
 *
 * Status faults (`status-503-retry-after`, `status-429`, `reset-before-response`) act on any matching
 * request, without forwarding it. Body faults (`drop-mid-body`, `truncate-body`, `flip-byte`) act on
 * matching GET requests whose upstream answer is 200/206 with a body (blob GETs): the body is streamed
 * and the fault is applied at the middle offset. A rule is used up only when its fault is applied.
 */
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { SetupError } from './setup-error.ts';

export type Fault =
  | 'drop-mid-body' // send half the body, then reset the connection (ECONNRESET)
  | 'truncate-body' // send half the body with the full Content-Length, then close cleanly (premature end)
  | 'flip-byte' // invert the byte at the middle offset, length unchanged
  | 'status-503-retry-after' // 503 with `Retry-After: 1`
  | 'status-429' // 429 Too Many Requests
  | 'reset-before-response'; // TCP reset before any response byte

export const BODY_FAULTS: readonly Fault[] = ['drop-mid-body', 'truncate-body', 'flip-byte'];

export interface FaultRule {
  match: (method: string, path: string) => boolean;
  /** How many matching requests get the fault. */
  times: number;
  fault: Fault;
}

export interface ProxyLogEntry {
  method: string;
  path: string;
  /** The status sent to the client; 0 when the connection was reset before any response. */
  status: number;
  fault?: Fault;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  target: string;
  log: ProxyLogEntry[];
  inject(rule: FaultRule): void;
  clear(): void;
  stop(): Promise<void>;
}

/** True for `GET /v2/<name>/blobs/<digest>`. */
export function isBlobGet(method: string, path: string): boolean {
  return method === 'GET' && /^\/v2\/.+\/blobs\/[a-z0-9]+:[a-f0-9]+(\?.*)?$/.test(path);
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te'];

function responseHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.includes(k)) out[k] = v;
  return out;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const m = /^(.+):(\d+)$/.exec(target);
  if (!m) {
    throw new SetupError('usage', 'TEST_PROXY_TARGET', `fault proxy target "${target}" is not host:port`, {
      hint: 'pass registry.host, e.g. 127.0.0.1:5000',
    });
  }
  const targetHost = m[1]!;
  const targetPort = Number(m[2]);
  let rules: FaultRule[] = [];
  const log: ProxyLogEntry[] = [];
  const agent = new Agent({ keepAlive: true });
  const sockets = new Set<Socket>();

  const pick = (method: string, path: string, body: boolean): FaultRule | undefined =>
    rules.find((r) => r.times > 0 && BODY_FAULTS.includes(r.fault) === body && r.match(method, path));

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const statusRule = pick(method, path, false);
    if (statusRule) {
      statusRule.times--;
      const fault = statusRule.fault;
      if (fault === 'reset-before-response') {
        log.push({ method, path, status: 0, fault });
        req.socket.resetAndDestroy();
        return;
      }
      req.resume();
      const status = fault === 'status-429' ? 429 : 503;
      const headers: OutgoingHttpHeaders = { 'content-type': 'application/json' };
      if (fault === 'status-503-retry-after') headers['retry-after'] = '1';
      log.push({ method, path, status, fault });
      res.writeHead(status, headers);
      res.end(
        JSON.stringify({
          errors: [{ code: status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: fault }],
        }),
      );
      return;
    }

    const up = httpRequest(
      { host: targetHost, port: targetPort, method, path, headers: req.headers, agent },
      (upRes) => {
        const status = upRes.statusCode ?? 502;
        const headers = responseHeaders(upRes.headers);
        const bodyRule =
          method === 'GET' && (status === 200 || status === 206) ? pick(method, path, true) : undefined;
        if (!bodyRule) {
          log.push({ method, path, status });
          res.writeHead(status, headers);
          upRes.pipe(res);
          return;
        }
        bodyRule.times--;
        const fault = bodyRule.fault;
        log.push({ method, path, status, fault });
        const lenHeader = upRes.headers['content-length'];
        if (lenHeader !== undefined) {
          streamWithFault(upRes, res, status, headers, Number(lenHeader), fault);
        } else {
          // No length to find the middle by: buffer this one body.
          const chunks: Buffer[] = [];
          upRes.on('data', (c: Buffer) => chunks.push(c));
          upRes.on('end', () => {
            const body = Buffer.concat(chunks);
            headers['content-length'] = String(body.length);
            streamWithFault(Readable.from([body]), res, status, headers, body.length, fault);
          });
        }
      },
    );
    up.on('error', (e) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      log.push({ method, path, status: 502 });
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`fault proxy: upstream error: ${e.message}`);
    });
    req.pipe(up);
  };

  const server = createServer(handle);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    host,
    url: `http://${host}`,
    target,
    log,
    inject(rule: FaultRule): void {
      rules.push(rule);
    },
    clear(): void {
      rules = [];
    },
    async stop(): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}

function streamWithFault(
  src: Readable,
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  length: number,
  fault: Fault,
): void {
  const middle = Math.floor(length / 2);
  let offset = 0;
  let done = false;
  res.writeHead(status, headers);
  res.flushHeaders();

  const cut = (last: Buffer): void => {
    done = true;
    src.destroy();
    const socket = res.socket;
    const finish = (): void => {
      if (!socket) return;
      if (fault === 'drop-mid-body') {
        // Let the half reach the client, then reset the connection.
        setTimeout(() => socket.resetAndDestroy(), 50);
      } else {
        // truncate-body: close cleanly with fewer bytes than Content-Length.
        socket.end();
      }
    };
    if (last.length > 0) res.write(last, () => finish());
    else finish();
  };

  src.on('data', (chunk: Buffer) => {
    if (done) return;
    const end = offset + chunk.length;
    if (fault === 'flip-byte') {
      if (middle >= offset && middle < end) {
        const copy = Buffer.from(chunk);
        copy[middle - offset] = copy[middle - offset]! ^ 0xff;
        chunk = copy;
      }
    } else if (end >= middle) {
      cut(chunk.subarray(0, middle - offset));
      offset = end;
      return;
    }
    offset = end;
    if (!res.write(chunk)) {
      src.pause();
      res.once('drain', () => src.resume());
    }
  });
  src.on('end', () => {
    if (done) return;
    if (fault !== 'flip-byte') {
      cut(Buffer.alloc(0)); // body shorter than announced: still cut
      return;
    }
    res.end();
  });
}
