/**
 * An HTTP reverse proxy on 127.0.0.1 in front of a test registry, with programmable faults, to test
 * kiln's retry and verification paths against real failures on the wire.
 *
 * Status faults (`status-503-retry-after`, `status-429`, `reset-before-response`,
 * `stall-before-response`) act on any matching request, without forwarding it. Response-body faults
 * (`drop-mid-body`, `truncate-body`, `flip-byte`, `stall-mid-body`) act on matching GET requests whose
 * upstream answer is 200/206 with a body (blob and manifest GETs): the body is streamed and the fault
 * is applied at the middle offset (or `rule.offset`). Request-body faults (`flip-request-byte`,
 * `drop-mid-request`) act on matching requests with a body (uploads, manifest PUTs) on the way to the
 * registry. A rule is used up only when its fault is applied.
 */
import { Agent, createServer, request as httpRequest } from 'node:http';
import type {
  ClientRequest,
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { SetupError } from './setup-error.ts';

export type Fault =
  | 'drop-mid-body' // send half the body, then reset the connection (ECONNRESET)
  | 'truncate-body' // send half the body with the full Content-Length, then close cleanly (premature end)
  | 'flip-byte' // invert the byte at the middle offset, length unchanged
  | 'status-503-retry-after' // 503 with `Retry-After: 1`
  | 'status-429' // 429 Too Many Requests
  | 'reset-before-response' // TCP reset before any response byte
  | 'stall-before-response' // read the request, never answer (the client must time out)
  | 'stall-mid-body' // send half the body, then nothing more on an open connection
  | 'flip-request-byte' // invert the byte at the middle offset of the request body on its way up
  | 'drop-mid-request'; // forward half the request body, then reset both connections

export const BODY_FAULTS: readonly Fault[] = [
  'drop-mid-body',
  'truncate-body',
  'flip-byte',
  'stall-mid-body',
];
export const REQUEST_FAULTS: readonly Fault[] = ['flip-request-byte', 'drop-mid-request'];

export interface FaultRule {
  match: (method: string, path: string) => boolean;
  /** How many matching requests get the fault. */
  times: number;
  fault: Fault;
  /** Byte offset for the flip or cut (default: the middle); clamped into the body. */
  offset?: number;
  /** The offset as a fraction of the body's length in [0, 1), when `offset` is not given. */
  fraction?: number;
}

type FaultKind = 'status' | 'request' | 'body';

function kindOf(f: Fault): FaultKind {
  return BODY_FAULTS.includes(f) ? 'body' : REQUEST_FAULTS.includes(f) ? 'request' : 'status';
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

export interface FaultProxyOptions {
  /** Rewrites the request path before forwarding (e.g. a mirror's `/v2/prefix/...` to `/v2/...`). */
  rewrite?: (path: string) => string;
}

export async function startFaultProxy(target: string, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
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

  const pick = (method: string, path: string, kind: FaultKind): FaultRule | undefined =>
    rules.find((r) => r.times > 0 && kindOf(r.fault) === kind && r.match(method, path));

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const statusRule = pick(method, path, 'status');
    if (statusRule) {
      statusRule.times--;
      const fault = statusRule.fault;
      if (fault === 'reset-before-response') {
        log.push({ method, path, status: 0, fault });
        req.socket.resetAndDestroy();
        return;
      }
      if (fault === 'stall-before-response') {
        log.push({ method, path, status: 0, fault });
        req.resume(); // the socket stays open until the client gives up or the proxy stops
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
      {
        host: targetHost,
        port: targetPort,
        method,
        path: opts.rewrite ? opts.rewrite(path) : path,
        headers: req.headers,
        agent,
      },
      (upRes) => {
        const status = upRes.statusCode ?? 502;
        const headers = responseHeaders(upRes.headers);
        const bodyRule =
          method === 'GET' && (status === 200 || status === 206) ? pick(method, path, 'body') : undefined;
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
          streamWithFault(upRes, res, status, headers, Number(lenHeader), bodyRule);
        } else {
          // No length to find the middle by: buffer this one body.
          const chunks: Buffer[] = [];
          upRes.on('data', (c: Buffer) => chunks.push(c));
          upRes.on('end', () => {
            const body = Buffer.concat(chunks);
            headers['content-length'] = String(body.length);
            streamWithFault(Readable.from([body]), res, status, headers, body.length, bodyRule);
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
    const requestRule = req.headers['content-length'] !== '0' ? pick(method, path, 'request') : undefined;
    if (requestRule) {
      requestRule.times--;
      log.push({
        method,
        path,
        status: requestRule.fault === 'drop-mid-request' ? 0 : -1,
        fault: requestRule.fault,
      });
      forwardWithRequestFault(req, up, requestRule);
    } else {
      req.pipe(up);
    }
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

/** Where a rule's flip or cut falls in a body of `length` bytes. */
function faultOffset(rule: FaultRule, length: number): number {
  const at = rule.offset ?? Math.floor(length * (rule.fraction ?? 0.5));
  return Math.max(0, Math.min(at, Math.max(0, length - 1)));
}

/**
 * Sends the request body upstream with its fault: one byte inverted (length unchanged), or half of it
 * and then both connections reset, as a client whose link died mid-upload. Bodies without a
 * Content-Length are buffered to find the offset.
 */
function forwardWithRequestFault(req: IncomingMessage, up: ClientRequest, rule: FaultRule): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const at = faultOffset(rule, body.length);
    if (rule.fault === 'flip-request-byte') {
      if (body.length > 0) body[at] = body[at]! ^ 0xff;
      up.end(body);
      return;
    }
    up.write(body.subarray(0, at), () => {
      up.destroy();
      req.socket.resetAndDestroy();
    });
  });
}

function streamWithFault(
  src: Readable,
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  length: number,
  rule: FaultRule,
): void {
  const fault = rule.fault;
  const middle =
    rule.offset === undefined && rule.fraction === undefined
      ? Math.floor(length / 2)
      : faultOffset(rule, length);
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
      } else if (fault === 'stall-mid-body') {
        // Nothing more: the connection stays open until the client times out or the proxy stops.
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
