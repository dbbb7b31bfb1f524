// Against a real `session-ca serve` and real openssl s_server backends.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { request as undiciRequest } from 'undici';

import { IssuedCertificate, SessionCertificate, SignerClient, SignerError } from '../src/index.js';
import {
  httpsGet, makeCa, makeServerIdentity, requireTools, startBackend, startSigner, tempDir,
} from './helpers.mjs';

const SESSION = '92fea10a-0905-40cc-aca1-54ee52e89c71';
const HMAC_SECRET = Buffer.from('0123456789abcdef0123456789abcdef-node-client-test', 'utf8');

/** The client certificate an `openssl s_server -www` page shows (PEM). */
function presented(page) {
  const match = page.match(/Client certificate[\s\S]*?(-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----)/);
  assert.ok(match, `no client certificate on the page:\n${page}`);
  return match[1];
}

let bin;
let tmp;
let ca;
let foreignCa;
let signer;
let foreignSigner;
let hmacSigner;
let identity;
let backend;
let expiredBackend;

before(async () => {
  bin = requireTools();
  tmp = tempDir();
  ca = makeCa(bin);
  foreignCa = makeCa(bin, 'CN=foreign CA,O=elsewhere');
  const secretFile = path.join(tmp.dir, 'hmac-secret');
  writeFileSync(secretFile, HMAC_SECRET.toString('utf8') + '\n', { mode: 0o600 });
  [signer, foreignSigner, hmacSigner] = await Promise.all([
    startSigner(bin, ca.dir),
    startSigner(bin, foreignCa.dir),
    startSigner(bin, ca.dir, `[server]\nauth = "hmac"\n[hmac_keys.node-test]\nsecret_file = "${secretFile}"\n`),
  ]);
  const chain = await new SignerClient({ url: signer.url }).caChain();
  const chainFile = path.join(tmp.dir, 'chain.pem');
  writeFileSync(chainFile, chain);
  identity = makeServerIdentity(tmp.dir);
  [backend, expiredBackend] = await Promise.all([
    startBackend({ chainFile, identity }),
    // Verifies client certificates as at a day from now: ours have expired by then.
    startBackend({ chainFile, identity, attime: Math.floor(Date.now() / 1000) + 86_400 }),
  ]);
});

after(async () => {
  await Promise.all([signer, foreignSigner, hmacSigner, backend, expiredBackend].map((s) => s?.stop()));
  for (const dir of [ca, foreignCa, tmp]) dir?.remove();
});

describe('SignerClient.issue', () => {
  test('issues a certificate with the requested facts, key in memory', async () => {
    const client = new SignerClient({ url: signer.url });
    const cert = await client.issue({
      sessionId: SESSION,
      transactionId: 'tx-0001',
      claims: { agent: 'node test', geo: { lat: '52.15', lon: '4.49' } },
      keyType: 'ed25519',
      ttl: 120,
    });
    assert.ok(cert instanceof IssuedCertificate);
    assert.equal(cert.sessionId, SESSION);
    assert.equal(cert.profile, 'default');
    assert.equal(cert.keyType, 'ed25519');
    assert.match(cert.serial, /^[0-9a-f]+$/);
    assert.match(cert.fingerprintSha256, /^[0-9a-f]{64}$/);
    assert.ok(cert.requestId);
    assert.ok(cert.notBefore < cert.renewAfter && cert.renewAfter < cert.notAfter);
    assert.ok(Math.abs(cert.notAfter.getTime() - Date.now() - 120_000) < 10_000);
    assert.match(cert.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(cert.caChain.length, 1);

    const x509 = new X509Certificate(cert.certificate);
    assert.match(x509.subject, new RegExp(`CN=${SESSION}`));
    assert.equal(x509.fingerprint256.replaceAll(':', '').toLowerCase(), cert.fingerprintSha256);
    assert.ok(x509.verify(new X509Certificate(cert.caChain[0]).publicKey));
    assert.ok(x509.checkPrivateKey((await import('node:crypto')).createPrivateKey(cert.privateKey)));
  });

  test('never shows the private key in inspect, console output or JSON', async () => {
    const cert = await new SignerClient({ url: signer.url }).issue({ sessionId: SESSION, transactionId: 'tx-0002' });
    const keyBody = cert.privateKey.split('\n')[1];
    for (const shown of [inspect(cert), inspect(cert, { depth: 5, showHidden: true }), JSON.stringify(cert), `${Object.values(cert)}`]) {
      assert.ok(!shown.includes('PRIVATE KEY') && !shown.includes(keyBody), shown);
    }
    assert.match(inspect(cert), /serial: '[0-9a-f]+'/);
    assert.equal(JSON.parse(JSON.stringify(cert)).privateKey, '[redacted]');
  });

  test("refusals are SignerErrors with the signer's status and code", async () => {
    const client = new SignerClient({ url: signer.url });
    await assert.rejects(client.issue({ ttl: 100_000 }), (error) => {
      assert.ok(error instanceof SignerError);
      assert.equal(error.status, 422);
      assert.equal(error.code, 'ttl_too_long');
      assert.match(error.message, /HTTP 422 ttl_too_long: ttl_seconds 100000/);
      assert.ok(error.requestId);
      return true;
    });
    await assert.rejects(client.issue({ profile: 'nope' }), { name: 'SignerError', status: 404, code: 'unknown_profile' });
    await assert.rejects(client.issue({ claims: { color: 'blue' } }), { status: 422, code: 'unknown_claim' });
  });

  test('dry runs check a request without issuing', async () => {
    const plan = await new SignerClient({ url: signer.url }).check({ sessionId: SESSION, transactionId: 'tx-dry' });
    assert.equal(plan.dry_run, true);
    assert.equal(plan.session_id, SESSION);
  });
});

describe('HMAC', () => {
  test('a signed request gets a certificate; the key id is the caller', async () => {
    const client = new SignerClient({ url: hmacSigner.url, auth: { type: 'hmac', keyId: 'node-test', secret: HMAC_SECRET } });
    const first = await client.issue({ sessionId: SESSION, transactionId: 'tx-hmac' });
    const second = await client.issue({ sessionId: SESSION, transactionId: 'tx-hmac' }); // same second: fresh nonce, no replay
    assert.notEqual(first.serial, second.serial);
    assert.ok((await client.check({})).dry_run); // the query is signed too
  });

  test('a wrong secret, an unknown key and no signature are refused with 401 unauthenticated', async () => {
    const wrong = Buffer.from(HMAC_SECRET);
    wrong[0] ^= 1;
    for (const auth of [
      { type: 'hmac', keyId: 'node-test', secret: wrong },
      { type: 'hmac', keyId: 'someone-else', secret: HMAC_SECRET },
      undefined,
    ]) {
      await assert.rejects(new SignerClient({ url: hmacSigner.url, auth }).issue({}), (error) => {
        assert.ok(error instanceof SignerError, String(error));
        assert.equal(error.status, 401);
        assert.equal(error.code, 'unauthenticated');
        return true;
      });
    }
  });

  test('secrets shorter than 32 bytes are refused before any request', () => {
    assert.throws(() => new SignerClient({ url: hmacSigner.url, auth: { type: 'hmac', keyId: 'k', secret: Buffer.alloc(31) } }), /at least 32 bytes, got 31/);
  });
});

describe('mTLS with the session certificate', () => {
  test('a call through httpsAgent reaches a backend that requires a client certificate', async () => {
    const session = new SessionCertificate(new SignerClient({ url: signer.url }), { sessionId: SESSION, transactionId: 'tx-mtls' });
    const agent = await session.httpsAgent({ ca: identity.certPem });
    const response = await httpsGet(backend.url, agent);
    assert.equal(response.status, 200);
    assert.match(response.body, /Client certificate/i); // s_server -www reports the peer certificate
    assert.ok(response.body.includes(SESSION), 'the backend saw our session id as the subject CN');
    assert.equal(presented(response.body), (await session.current()).certificate.trim());
    assert.equal(await session.httpsAgent({ ca: identity.certPem }), agent, 'same agent until renewal');
    // Another pinning check, though named the same, is another agent; the same function, the same agent.
    // (Both functions are named `checkServerIdentity`, after the property.)
    const pinA = { ca: identity.certPem, checkServerIdentity: (host, cert) => undefined };
    const pinB = { ca: identity.certPem, checkServerIdentity: (host, cert) => new Error(`not pinned: ${host} ${cert?.subject}`) };
    assert.equal(pinA.checkServerIdentity.name, pinB.checkServerIdentity.name);
    const withA = await session.httpsAgent(pinA);
    const withB = await session.httpsAgent(pinB);
    assert.notEqual(withB, withA);
    assert.equal(withB.options.checkServerIdentity, pinB.checkServerIdentity);
    assert.equal(await session.httpsAgent({ ...pinA }), withA);
    await session.close();
  });

  test('the undici dispatcher presents it too', async () => {
    const session = new SessionCertificate(new SignerClient({ url: signer.url }), { sessionId: SESSION, transactionId: 'tx-undici' });
    const dispatcher = await session.dispatcher({ ca: identity.certPem });
    const response = await undiciRequest(backend.url, { dispatcher });
    assert.equal(response.statusCode, 200);
    assert.ok((await response.body.text()).includes(SESSION));
    await session.close();
  });

  test('a certificate from a foreign signer is refused by the backend', async () => {
    const session = new SessionCertificate(new SignerClient({ url: foreignSigner.url }), { sessionId: SESSION, transactionId: 'tx-foreign' });
    await assert.rejects(httpsGet(backend.url, await session.httpsAgent({ ca: identity.certPem })));
    await session.close();
  });

  test('an expired certificate is refused by the backend', async () => {
    const session = new SessionCertificate(new SignerClient({ url: signer.url }), { sessionId: SESSION, transactionId: 'tx-expired' });
    const agent = await session.httpsAgent({ ca: identity.certPem });
    await assert.rejects(httpsGet(expiredBackend.url, agent)); // verifies as at tomorrow
    // The same certificate is accepted by a backend verifying as at now.
    assert.equal((await httpsGet(backend.url, agent)).status, 200);
    await session.close();
  });
});

describe('renewal', () => {
  test('after renewAfter the next agent carries a new certificate and still works', async () => {
    let now = Date.now();
    const session = new SessionCertificate(
      new SignerClient({ url: signer.url }),
      { sessionId: SESSION, transactionId: 'tx-renew', ttl: 60 },
      { now: () => new Date(now) },
    );
    const first = await session.current();
    const firstAgent = await session.httpsAgent({ ca: identity.certPem });
    assert.equal((await httpsGet(backend.url, firstAgent)).status, 200);

    now = first.renewAfter.getTime() - 1;
    assert.equal((await session.current()).serial, first.serial, 'not renewed before renewAfter');
    assert.equal(await session.httpsAgent({ ca: identity.certPem }), firstAgent);

    now = first.renewAfter.getTime();
    // Concurrent callers share one issuance.
    const renewed = await Promise.all(Array.from({ length: 8 }, () => session.current()));
    assert.equal(new Set(renewed.map((c) => c.serial)).size, 1);
    assert.notEqual(renewed[0].serial, first.serial);
    // Back to the real clock: renew_after has whole seconds, so a certificate
    // issued within the same second as `first` may be due at the same instant.
    now = Date.now();
    assert.equal((await session.current()).serial, renewed[0].serial, 'the renewed certificate is kept');

    const secondAgent = await session.httpsAgent({ ca: identity.certPem });
    assert.notEqual(secondAgent, firstAgent);
    const response = await httpsGet(backend.url, secondAgent);
    assert.equal(response.status, 200);
    // s_server -www prints the client certificate it received: the new one.
    assert.equal(presented(response.body), renewed[0].certificate.trim());
    await session.close();
  });

  test('without a sessionId, renewals keep the one the signer generated', async () => {
    let now = Date.now();
    const session = new SessionCertificate(new SignerClient({ url: signer.url }), { transactionId: 'tx-gen' }, { now: () => now });
    const first = await session.current();
    assert.match(first.sessionId, /^[0-9a-f-]{36}$/);
    now = first.renewAfter.getTime();
    const second = await session.current();
    assert.notEqual(second.serial, first.serial);
    assert.equal(second.sessionId, first.sessionId);
  });

  test('a failed renewal keeps a still-valid certificate; an expired one is not kept', async () => {
    const own = await startSigner(bin, ca.dir);
    let now = Date.now();
    const session = new SessionCertificate(new SignerClient({ url: own.url }), {}, { now: () => now });
    const issued = await session.current();
    await own.stop(); // renewals now fail: connection refused
    now = issued.renewAfter.getTime();
    assert.equal((await session.current()).serial, issued.serial, 'still valid: kept');
    now = issued.notAfter.getTime();
    await assert.rejects(session.current(), { code: 'ECONNREFUSED' });
  });
});
