// The private key never reaches a filesystem path.
//
// Method: a small client script (issue a certificate, make one mTLS call
// through httpsAgent) runs under
//   strace -f -e trace=open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,symlink,symlinkat
// which logs, for the node process and every thread and child it starts,
// each system call that could create, write or move a file. The test then
// asserts that no path was opened with O_WRONLY, O_RDWR, O_CREAT or O_TRUNC,
// and that no creat/rename/link/symlink happened, except under /dev/ and
// /proc/ (e.g. /dev/null, /dev/urandom, /proc/self/...). Memory-only
// sockets and pipes are not paths, so they are not open(2)ed. The script
// must also have succeeded (HTTP 200 from the backend, which required our
// certificate), and the log must show the client's source being opened, so
// an empty log cannot pass. A control test runs a script that does write
// and rename a key file, and the same check must catch it. The strace log
// itself is written by strace, not by the traced process.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';

import { SignerClient } from '../src/index.js';
import { makeCa, makeServerIdentity, requireTools, startBackend, startSigner, tempDir } from './helpers.mjs';

const INDEX = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'index.js')).href;

// Run with `node --input-type=module -e`, so that not even the script is a file we write.
const SCRIPT = `
import https from 'node:https';
import { SessionCertificate, SignerClient } from ${JSON.stringify(INDEX)};
const session = new SessionCertificate(new SignerClient({ url: process.env.SIGNER_URL }), {
  sessionId: '92fea10a-0905-40cc-aca1-54ee52e89c71', transactionId: 'tx-strace',
});
const agent = await session.httpsAgent({ ca: process.env.BACKEND_CA });
const status = await new Promise((resolve, reject) => {
  https.get(process.env.BACKEND_URL, { agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); })
    .on('error', reject);
});
await session.close();
console.log('STATUS ' + status + ' SERIAL ' + (await session.current()).serial);
`;

const TRACED = 'open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,symlink,symlinkat';
const WRITE_FLAGS = /\bO_(WRONLY|RDWR|CREAT|TRUNC)\b/;
const ALLOWED = /^\/(dev|proc)\//;

let bin, ca, signer, backend, tmp, identity;

before(async () => {
  bin = requireTools({ strace: true });
  tmp = tempDir();
  ca = makeCa(bin);
  signer = await startSigner(bin, ca.dir);
  const chainFile = path.join(tmp.dir, 'chain.pem');
  writeFileSync(chainFile, await new SignerClient({ url: signer.url }).caChain());
  identity = makeServerIdentity(tmp.dir);
  backend = await startBackend({ chainFile, identity });
});

after(async () => {
  await Promise.all([signer?.stop(), backend?.stop()]);
  ca?.remove();
  tmp?.remove();
});

/** Each traced call of the log: { syscall, paths, line }. */
function calls(log) {
  const out = [];
  for (const line of log.split('\n')) {
    // "1234 openat(AT_FDCWD, "/x", O_RDONLY|O_CLOEXEC) = 3", possibly "<unfinished ...>"
    const match = line.match(/^(?:\[pid\s+)?\d+\]?\s+(\w+)\((.*)$/);
    if (!match || !TRACED.split(',').includes(match[1])) continue;
    const paths = [...match[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
    out.push({ syscall: match[1], paths, args: match[2], line });
  }
  return out;
}

/** Runs `script` under strace; returns its result and the traced calls. */
function trace(script) {
  const log = path.join(tmp.dir, `strace-${Date.now()}.log`);
  const result = spawnSync(
    'strace',
    ['-f', '-e', `trace=${TRACED}`, '-o', log, process.execPath, '--input-type=module', '-e', script],
    {
      encoding: 'utf8',
      cwd: tmp.dir,
      env: { ...process.env, SIGNER_URL: signer.url, BACKEND_URL: backend.url, BACKEND_CA: identity.certPem },
      timeout: 60_000,
    },
  );
  return { result, traced: calls(readFileSync(log, 'utf8')) };
}

/** The calls that write, create, rename or link a path outside /dev and /proc. */
function writes(traced) {
  return traced
    .filter((c) => {
      const outside = c.paths.some((p) => !ALLOWED.test(p));
      if (c.syscall.startsWith('open')) return outside && WRITE_FLAGS.test(c.args);
      return outside; // creat, rename*, link*, symlink*: any outside /dev, /proc
    })
    .map((c) => c.line);
}

test('issuing and using a certificate opens no path for writing', () => {
  const { result, traced } = trace(SCRIPT);
  assert.equal(result.status, 0, `the traced script failed:\n${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /STATUS 200 SERIAL [0-9a-f]+/, 'the mTLS call through httpsAgent succeeded');
  assert.ok(
    traced.some((c) => c.paths.some((p) => p.endsWith('/src/index.js'))),
    'strace saw the client being read (the trace is not empty)',
  );
  assert.deepEqual(writes(traced), [], 'paths opened for writing, created, renamed or linked');
});

test('control: the same check catches a script that writes the key to a file', () => {
  const { result, traced } = trace(`
    import { writeFileSync, renameSync } from 'node:fs';
    import { SignerClient } from ${JSON.stringify(INDEX)};
    const cert = await new SignerClient({ url: process.env.SIGNER_URL }).issue({});
    writeFileSync('key.pem.tmp', cert.privateKey, { mode: 0o600 });
    renameSync('key.pem.tmp', 'key.pem');
  `);
  assert.equal(result.status, 0, result.stderr);
  const found = writes(traced);
  assert.ok(found.some((line) => /open.*key\.pem\.tmp.*O_WRONLY/.test(line)), found.join('\n'));
  assert.ok(found.some((line) => /rename.*key\.pem/.test(line)), found.join('\n'));
});
