// Idempotency keys and retries of SignerClient.issue. The replay is checked
// against a real `session-ca serve` with an SQLite store; the retry decisions
// against a scripted HTTP server on loopback that answers each request with
// the next step of its script (a refusal, a dropped connection, or a 201 whose
// body a real signer produced) and records what it received.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  DEFAULT_RETRY, IDEMPOTENCY_HEADER, SignerClient, SignerError, newIdempotencyKey, retryDelayMs,
} from '../src/index.js';
import { closeScripted, makeCa, refusal, requireTools, script, startSigner, tempDir } from './helpers.mjs';

const QUICK = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2_000 };
const HMAC_SECRET = Buffer.from('0123456789abcdef0123456789abcdef-node-retry-test', 'utf8');

let bin;
let ca;
let ledgerDir;
let signer;
/** A 201 as a real signer answers it: [status, headers, body]. */
let issued;

before(async () => {
  bin = requireTools();
  ca = makeCa(bin);
  ledgerDir = tempDir('session-ca-ledger-');
  signer = await startSigner(bin, ca.dir, `[store]\nurl = "sqlite:${path.join(ledgerDir.dir, 'ledger.sqlite3')}"\n`);
  const response = await fetch(`${signer.url}/v1/certificates`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(response.status, 201);
  issued = [201, { 'content-type': 'application/json' }, Buffer.from(await response.arrayBuffer())];
});

after(async () => {
  await closeScripted();
  await signer?.stop();
  ca?.remove();
  ledgerDir?.remove();
});

describe('idempotency keys against a signer with a store', () => {
  test('a given key is replayed by the signer; fresh keys are not', async () => {
    const client = new SignerClient({ url: signer.url });
    const sessionId = randomUUID();
    const key = newIdempotencyKey();
    const first = await client.issue({ sessionId }, { idempotencyKey: key });
    const again = await client.issue({ sessionId }, { idempotencyKey: key });
    assert.equal(again.serial, first.serial);
    assert.equal(again.certificate, first.certificate);
    const one = await client.issue({ sessionId });
    const two = await client.issue({ sessionId });
    assert.equal(new Set([first.serial, one.serial, two.serial]).size, 3);
    await assert.rejects(client.issue({ sessionId: randomUUID() }, { idempotencyKey: key }), (error) => {
      assert.ok(error instanceof SignerError);
      assert.equal(error.status, 422);
      assert.equal(error.code, 'idempotency_key_reused');
      return true;
    });
  });

  test('a bad key is refused before anything is sent', async () => {
    // Nothing listens on port 9: sending would fail with ECONNREFUSED, not a TypeError.
    const client = new SignerClient({ url: 'http://127.0.0.1:9' });
    for (const bad of ['short', 'x'.repeat(129), 'has space in it, sixteen+', 'equals=sign-is-not-allowed', 42]) {
      await assert.rejects(client.issue({}, { idempotencyKey: bad }), /idempotency key must be 16 to 128/);
    }
  });

  test('new keys are fresh 32-character base64url', () => {
    const keys = new Set(Array.from({ length: 100 }, () => newIdempotencyKey()));
    assert.equal(keys.size, 100);
    for (const key of keys) assert.match(key, /^[A-Za-z0-9_-]{32}$/);
  });
});

describe('retries', () => {
  test('a 503 is retried with the same key and a fresh signature', async () => {
    const s = await script(refusal(503, 'ledger_unavailable'), issued);
    const client = new SignerClient({ url: s.url, auth: { type: 'hmac', keyId: 'payments', secret: HMAC_SECRET }, retry: QUICK });
    const cert = await client.issue({ transactionId: 'tx-1' });
    assert.equal(cert.serial, JSON.parse(issued[2].toString('utf8')).serial);
    assert.equal(s.received.length, 2);
    const [first, second] = s.received;
    const header = IDEMPOTENCY_HEADER.toLowerCase();
    assert.equal(first.headers[header].length, 32);
    assert.equal(second.headers[header], first.headers[header]);
    assert.notEqual(second.headers.authorization, first.headers.authorization); // a fresh nonce
  });

  test('each call has its own key', async () => {
    const s = await script(issued, issued);
    const client = new SignerClient({ url: s.url, retry: QUICK });
    await client.issue();
    await client.issue();
    assert.notEqual(s.received[0].headers['idempotency-key'], s.received[1].headers['idempotency-key']);
  });

  test('in progress is retried after its Retry-After', async () => {
    const s = await script(refusal(409, 'idempotency_in_progress', { 'retry-after': '0' }), issued);
    await new SignerClient({ url: s.url, retry: QUICK }).issue();
    assert.equal(s.received.length, 2);
  });

  test('a dropped connection and a gateway error are retried under one key', async () => {
    const s = await script(null, refusal(502, 'http_502'), issued);
    await new SignerClient({ url: s.url, retry: QUICK }).issue();
    assert.equal(s.received.length, 3);
    assert.equal(new Set(s.received.map((r) => r.headers['idempotency-key'])).size, 1);
  });

  test('other refusals are not retried', async () => {
    for (const [status, code] of [[409, 'crl_unavailable'], [422, 'ttl_too_long'], [403, 'revoked'], [401, 'unauthenticated']]) {
      const s = await script(refusal(status, code));
      await assert.rejects(new SignerClient({ url: s.url, retry: QUICK }).issue(), (error) => {
        assert.equal(error.status, status);
        assert.equal(error.code, code);
        return true;
      });
      assert.equal(s.received.length, 1);
    }
  });

  test('a Retry-After beyond maxDelayMs rejects at once, with the wait', async () => {
    const s = await script(refusal(429, 'rate_limited', { 'retry-after': '30' }));
    await assert.rejects(new SignerClient({ url: s.url, retry: QUICK }).issue(), (error) => {
      assert.equal(error.code, 'rate_limited');
      assert.equal(error.retryAfter, 30);
      return true;
    });
    assert.equal(s.received.length, 1);
  });

  test('retries end at maxAttempts', async () => {
    const s = await script(...Array.from({ length: 5 }, () => refusal(503, 'ca_unavailable')));
    await assert.rejects(new SignerClient({ url: s.url, retry: QUICK }).issue(), { status: 503, code: 'ca_unavailable' });
    assert.equal(s.received.length, 3);
    const once = await script(refusal(503, 'ca_unavailable'), refusal(503, 'ca_unavailable'));
    await assert.rejects(new SignerClient({ url: once.url, retry: { maxAttempts: 1 } }).issue(), { status: 503 });
    assert.equal(once.received.length, 1);
  });

  test('a retry setting left undefined keeps its default, and a bad one is refused', async () => {
    const s = await script(...Array.from({ length: 5 }, () => refusal(503, 'ca_unavailable')));
    const client = new SignerClient({ url: s.url, retry: { maxAttempts: undefined, baseDelayMs: 1 } });
    await assert.rejects(client.issue(), { status: 503 });
    assert.equal(s.received.length, DEFAULT_RETRY.maxAttempts);
    for (const retry of [{ maxAttempts: Number.NaN }, { maxDelayMs: -1 }, { baseDelayMs: '5' }, { attempts: 2 }]) {
      assert.throws(() => new SignerClient({ url: s.url, retry }), TypeError, JSON.stringify(retry));
    }
  });

  test('a malformed 201 is not retried', async () => {
    const s = await script([201, { 'content-type': 'application/json' }, Buffer.from('not json')], issued);
    await assert.rejects(new SignerClient({ url: s.url, retry: QUICK }).issue(), SyntaxError);
    assert.equal(s.received.length, 1);
  });

  test('backoff doubles up to maxDelayMs with full jitter', () => {
    const policy = { maxAttempts: 10, baseDelayMs: 200, maxDelayMs: 2_000 };
    for (const [attempts, cap] of [[1, 200], [2, 400], [3, 800], [4, 1_600], [5, 2_000], [9, 2_000]]) {
      const waits = Array.from({ length: 200 }, () => retryDelayMs(policy, attempts, undefined));
      assert.ok(waits.every((w) => w !== undefined && w >= 0 && w <= cap));
      assert.ok(Math.max(...waits) > cap / 2); // jitter spans the range
    }
    assert.equal(retryDelayMs(policy, 10, undefined), undefined);
    assert.equal(retryDelayMs(policy, 1, 1_500), 1_500);
    assert.equal(retryDelayMs(policy, 1, 2_500), undefined);
    assert.deepEqual({ ...DEFAULT_RETRY }, { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 2_000 });
  });
});
