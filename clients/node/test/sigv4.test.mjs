// SigV4: a local HTTP server records what SignerClient sends, and the test
// checks the signature the way AWS would: same scope, same signed headers,
// the body's hash, and an independent re-signing with @smithy/signature-v4.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, test } from 'node:test';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

import { SignerClient, SignerError } from '../src/index.js';
import { closeScripted, script } from './helpers.mjs';

const CREDENTIALS = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE-session-token',
};

const ISSUED = {
  serial: '5c1e0a',
  certificate: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  private_key: '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n',
  ca_chain: ['-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n'],
  not_before: '2026-11-22T08:24:17Z',
  not_after: '2026-11-22T08:29:47Z',
  renew_after: '2026-11-22T08:28:17Z',
  key_type: 'ecdsa-p256',
  fingerprint_sha256: '1f93'.repeat(16),
  'x5t#S256': 'H5Pk',
  profile: 'default',
  session_id: '92fea10a-0905-40cc-aca1-54ee52e89c71',
  request_id: 'aa9e0f34',
};

/** An answer of the signer (or a gateway in front of it) as a step of a script. */
function answer(status, body) {
  return [status, { 'content-type': 'application/json', 'x-request-id': 'rid-1' }, Buffer.from(JSON.stringify(body))];
}

after(closeScripted);

/** Parses `AWS4-HMAC-SHA256 Credential=.../scope, SignedHeaders=a;b, Signature=hex`. */
function parseAuthorization(value) {
  const match = value.match(/^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/);
  assert.ok(match, `not a SigV4 Authorization header: ${value}`);
  const [, accessKeyId, date, region, service, signedHeaders, signature] = match;
  return { accessKeyId, date, region, service, signedHeaders: signedHeaders.split(';'), signature };
}

/** Re-signs a received request with @smithy/signature-v4 at its X-Amz-Date, over the headers it says it signed. */
async function resign(request, { region, service, credentials }) {
  const { signedHeaders } = parseAuthorization(request.headers.authorization);
  const url = new URL(request.url, 'http://placeholder');
  const headers = Object.fromEntries(signedHeaders.map((name) => [name, request.headers[name]]));
  const amzDate = request.headers['x-amz-date'];
  const signingDate = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const signer = new SignatureV4({ service, region, credentials, sha256: Hash.bind(null, 'sha256') });
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: 'http:',
      hostname: '127.0.0.1',
      path: decodeURIComponent(url.pathname),
      query: Object.fromEntries(url.searchParams),
      headers,
      body: request.body,
    },
    { signingDate },
  );
  return signed.headers.authorization;
}

for (const [service, stage] of [['lambda', ''], ['execute-api', '/prod']]) {
  test(`SigV4 for ${service}: scope, signed headers, body hash and signature`, async () => {
    const { url: base, received } = await script(answer(201, ISSUED));
    const client = new SignerClient({
      url: `${base}${stage}`,
      auth: { type: 'sigv4', region: 'eu-west-1', service, credentials: CREDENTIALS },
    });
    const cert = await client.issue({ sessionId: ISSUED.session_id, transactionId: 'tx-1', claims: { agent: 'x' }, ttl: 300 });
    assert.equal(cert.serial, '5c1e0a');
    assert.deepEqual(cert.renewAfter, new Date('2026-11-22T08:28:17Z'));

    assert.equal(received.length, 1);
    const request = received[0];
    assert.equal(request.method, 'POST');
    assert.equal(request.url, `${stage}/v1/certificates`);
    assert.deepEqual(JSON.parse(request.body.toString()), {
      session_id: ISSUED.session_id,
      transaction_id: 'tx-1',
      claims: { agent: 'x' },
      ttl_seconds: 300,
    });

    const auth = parseAuthorization(request.headers.authorization);
    assert.equal(auth.accessKeyId, CREDENTIALS.accessKeyId);
    assert.equal(auth.region, 'eu-west-1');
    assert.equal(auth.service, service);
    assert.equal(auth.date, request.headers['x-amz-date'].slice(0, 8));
    for (const name of ['host', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']) {
      assert.ok(auth.signedHeaders.includes(name), `${name} is signed: ${auth.signedHeaders}`);
    }
    assert.equal(request.headers.host, new URL(base).host);
    assert.equal(request.headers['x-amz-security-token'], CREDENTIALS.sessionToken);
    assert.equal(request.headers['x-amz-content-sha256'], createHash('sha256').update(request.body).digest('hex'));

    assert.equal(await resign(request, { region: 'eu-west-1', service, credentials: CREDENTIALS }), request.headers.authorization);
    // A different secret does not reproduce it (the check is not vacuous).
    assert.notEqual(
      await resign(request, { region: 'eu-west-1', service, credentials: { ...CREDENTIALS, secretAccessKey: 'other' } }),
      request.headers.authorization,
    );
  });
}

test('SigV4 signs the query (dry runs) and GET /v1/ca', async () => {
  const { url: base, received } = await script(answer(200, { dry_run: true }), answer(200, { dry_run: true }));
  const client = new SignerClient({ url: base, auth: { type: 'sigv4', region: 'us-east-1', service: 'lambda', credentials: CREDENTIALS } });
  assert.deepEqual(await client.check({}), { dry_run: true });
  await client.caChain({ profile: 'payments' });
  assert.equal(received[0].url, '/v1/certificates?dry_run=true');
  assert.equal(received[1].url, '/v1/ca?profile=payments');
  for (const request of received) {
    assert.equal(await resign(request, { region: 'us-east-1', service: 'lambda', credentials: CREDENTIALS }), request.headers.authorization);
  }
});

test('credentials come from a provider function, or from the environment as Lambda sets them', async () => {
  const { url: base, received } = await script(answer(201, ISSUED), answer(201, ISSUED));
  let calls = 0;
  const provider = async () => {
    calls += 1;
    return { ...CREDENTIALS, accessKeyId: 'AKIDPROVIDER' };
  };
  await new SignerClient({ url: base, auth: { type: 'sigv4', region: 'eu-west-1', service: 'lambda', credentials: provider } }).issue();
  assert.equal(calls, 1);
  assert.equal(parseAuthorization(received[0].headers.authorization).accessKeyId, 'AKIDPROVIDER');

  const saved = { ...process.env };
  try {
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: 'AKIDFROMENV',
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_SESSION_TOKEN: 'env-session-token',
      AWS_REGION: 'ap-southeast-2',
    });
    await new SignerClient({ url: base, auth: { type: 'sigv4', service: 'execute-api' } }).issue();
    const request = received[1];
    const auth = parseAuthorization(request.headers.authorization);
    assert.equal(auth.accessKeyId, 'AKIDFROMENV');
    assert.equal(auth.region, 'ap-southeast-2');
    assert.equal(request.headers['x-amz-security-token'], 'env-session-token');
    assert.equal(
      await resign(request, {
        region: 'ap-southeast-2',
        service: 'execute-api',
        credentials: { accessKeyId: 'AKIDFROMENV', secretAccessKey: CREDENTIALS.secretAccessKey, sessionToken: 'env-session-token' },
      }),
      request.headers.authorization,
    );
    delete process.env.AWS_ACCESS_KEY_ID;
    await assert.rejects(new SignerClient({ url: base, auth: { type: 'sigv4', service: 'lambda' } }).issue(), /no AWS credentials/);
  } finally {
    for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
});

test('a gateway refusal that is not the signer JSON still becomes a SignerError', async () => {
  const { url: base } = await script(answer(403, { message: 'Forbidden' }));
  const client = new SignerClient({ url: base, auth: { type: 'sigv4', region: 'eu-west-1', service: 'execute-api', credentials: CREDENTIALS } });
  await assert.rejects(client.issue(), (error) => {
    assert.ok(error instanceof SignerError);
    assert.equal(error.status, 403);
    assert.equal(error.code, 'http_403');
    assert.equal(error.detail, 'Forbidden');
    assert.equal(error.requestId, 'rid-1');
    return true;
  });
});
