// Shared set-up for the tests: a real session-ca signer (the binary named by
// SESSION_CA_BIN), openssl s_server backends that demand a client
// certificate, and a one-shot HTTPS GET. No mocks.
//
// (`node --test` also loads this file as a test file; it defines no tests.)

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * The tools the tests need. Throws (so the tests FAIL, never skip) when one
 * is missing.
 */
export function requireTools({ strace = false } = {}) {
  const bin = process.env.SESSION_CA_BIN;
  if (!bin) {
    throw new Error(
      'SESSION_CA_BIN is not set: point it at a session-ca binary, e.g. ' +
        '`SESSION_CA_BIN=/path/to/session-ca node --test` (these tests run a real signer)',
    );
  }
  if (spawnSync(bin, ['--version']).status !== 0) throw new Error(`SESSION_CA_BIN=${bin} does not run (\`${bin} --version\` failed)`);
  if (spawnSync('openssl', ['version']).status !== 0) throw new Error('openssl is missing: the tests need `openssl` on PATH (s_server, req)');
  if (strace && spawnSync('strace', ['-V']).status !== 0) throw new Error('strace is missing: the no-disk test needs `strace` on PATH');
  return bin;
}

export function tempDir(prefix = 'session-ca-node-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs a command to completion; throws with its output on failure. */
export function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/**
 * Starts a child process and resolves once a line of its output (stdout or
 * stderr) matches `ready`, with the match. Rejects if it exits first or
 * takes longer than `timeoutMs`.
 */
function startUntil(command, args, ready, { timeoutMs = 15_000, ...options } = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`${command} did not become ready within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk) => {
      output += chunk;
      const match = output.match(ready);
      if (match) {
        clearTimeout(timer);
        child.stdout.removeListener('data', onData);
        child.stderr.removeListener('data', onData);
        child.stdout.resume();
        child.stderr.resume();
        resolve({ child, match, output: () => output });
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code ?? signal}) before it was ready:\n${output}`));
    });
  });
}

function stopper(child) {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
}

/**
 * A CA made by `session-ca init` in a fresh directory.
 * @returns {{ dir: string, remove: () => void }}
 */
export function makeCa(bin, subject = 'CN=node client test CA,O=session-ca') {
  const tmp = tempDir('session-ca-ca-');
  run(bin, ['init', '--dir', path.join(tmp.dir, 'ca'), '--subject', subject]);
  return { dir: path.join(tmp.dir, 'ca'), root: tmp.dir, remove: tmp.remove };
}

/**
 * Starts `session-ca serve` on 127.0.0.1 (port chosen by the OS, read from
 * its "listening" log line) and waits until `GET /healthz` answers 200.
 * `extraToml` is appended to the configuration.
 */
export async function startSigner(bin, caDir, extraToml = '', { env = {} } = {}) {
  const tmp = tempDir('session-ca-signer-');
  const config = path.join(tmp.dir, 'session-ca.toml');
  writeFileSync(
    config,
    `[cas.default]
source = "file:${caDir}"

[profiles.default]
default_ttl = "5m"
max_ttl = "15m"
[profiles.default.claims]
agent = { oid = "1.3.6.1.4.1.32473.1.100", type = "string", max_len = 256 }
geo   = { oid = "1.3.6.1.4.1.32473.1.101", type = "json",   max_len = 256 }
${extraToml}
`,
  );
  const { child, match } = await startUntil(
    bin,
    ['serve', '--config', config, '--listen', '127.0.0.1:0'],
    /"message":"session-ca listening","address":"([0-9.]+:\d+)"|session-ca listening.*?address[=:]\s*"?([0-9.]+:\d+)/,
    { env: { ...process.env, SESSION_CA_LOG_FORMAT: 'json', RUST_BACKTRACE: '0', ...env } },
  );
  const url = `http://${match[1] ?? match[2]}`;
  await waitForHealth(url);
  const stop = stopper(child);
  return {
    url,
    stop: async () => {
      await stop();
      tmp.remove();
    },
  };
}

/** Polls `GET {url}/healthz` until it answers 200 (10 s at most). */
export async function waitForHealth(url, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.status === 200) return;
      last = `HTTP ${response.status}: ${await response.text()}`;
    } catch (error) {
      last = error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${url}/healthz did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

/**
 * A throwaway server identity for 127.0.0.1/localhost (openssl req -x509).
 * @returns {{ cert: string, key: string, certPem: string }}
 */
export function makeServerIdentity(dir) {
  const cert = path.join(dir, 'server.pem');
  const key = path.join(dir, 'server-key.pem');
  run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-days', '3', '-keyout', key, '-out', cert,
  ]);
  return { cert, key, certPem: readFileSync(cert, 'utf8') };
}

/**
 * `openssl s_server -www` on 127.0.0.1 requiring a client certificate that
 * verifies against `chainFile` (`-Verify 1 -verify_return_error`); with
 * `attime`, certificates are verified as at that Unix time.
 * Resolves when it prints its ACCEPT line.
 */
export async function startBackend({ chainFile, identity, attime }) {
  const args = [
    's_server', '-accept', '127.0.0.1:0', '-cert', identity.cert, '-key', identity.key,
    '-Verify', '1', '-verify_return_error', '-CAfile', chainFile, '-www',
  ];
  if (attime !== undefined) args.push('-attime', String(attime));
  const { child, match } = await startUntil('openssl', args, /ACCEPT\s+\S*:(\d+)/);
  return { url: `https://127.0.0.1:${match[1]}/`, stop: stopper(child) };
}

/** One GET through `agent` (https.request); resolves { status, body } or rejects with the TLS error. */
export function httpsGet(url, agent) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** The service's JSON error answer, as a step of a script: [status, headers, body]. */
export function refusal(status, code, headers = {}) {
  const body = Buffer.from(JSON.stringify({ error: { code, message: `scripted ${code}` } }));
  return [status, { 'content-type': 'application/json', ...headers }, body];
}

const scripted = [];

/**
 * A loopback server answering request N with step N of its script
 * ([status, headers, body], or `null`: the connection is dropped
 * unanswered), recording each request's method, url, headers and body.
 * `closeScripted` stops every one started.
 */
export async function script(...steps) {
  /** @type {{ method: string, url: string, headers: Record<string, string>, body: Buffer }[]} */
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      const step = steps.length ? steps.shift() : refusal(500, 'script_exhausted');
      if (step === null) {
        req.socket.destroy();
        return;
      }
      const [status, headers, body] = step;
      res.writeHead(status, { ...headers, 'content-length': String(body.length) });
      res.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const entry = { server, received, url: `http://127.0.0.1:${server.address().port}` };
  scripted.push(entry);
  return entry;
}

/** Stops every server `script` started. */
export function closeScripted() {
  return Promise.all(scripted.splice(0).map((s) => new Promise((resolve) => s.server.close(resolve))));
}
