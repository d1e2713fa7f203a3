/**
 * A real forward proxy for tests: Debian's tinyproxy on a free loopback port, allowing CONNECT to any
 * port, with its log (one `CONNECT host:port` line per tunnel) readable by the test.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './registry.ts';
import { SetupError } from './setup-error.ts';

export interface ForwardProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** The `host:port` targets of every CONNECT so far, in order. */
  connects(): Promise<string[]>;
  stop(): Promise<void>;
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startForwardProxy(): Promise<ForwardProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-tinyproxy-'));
  await chmod(dir, 0o777); // tinyproxy drops to nobody when started as root
  const port = await freePort();
  const logFile = join(dir, 'tinyproxy.log');
  const conf = join(dir, 'tinyproxy.conf');
  await writeFile(
    conf,
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 60',
      `LogFile "${logFile}"`,
      'LogLevel Connect',
      'MaxClients 50',
      'Allow 127.0.0.1',
      // No ConnectPort line: CONNECT to every port (registries on ephemeral ports).
      '',
    ].join('\n'),
  );
  const child = spawn('tinyproxy', ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new SetupError('internal', 'TEST_PROXY_START', `tinyproxy did not start on ${port}: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    async connects(): Promise<string[]> {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return [...text.matchAll(/CONNECT ([^\s]+) HTTP/g)].map((m) => m[1]!);
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
