// session-ca Node client: asks a session-ca signer for a per-session mTLS
// client certificate (SigV4, HMAC or no authentication) and hands back an
// `https.Agent` (or an undici dispatcher) that presents it, key and
// certificate from memory. Nothing is written to disk.
//
// Types: ../index.d.ts (hand-written, kept in step with the JSDoc here).

import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { inspect } from 'node:util';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

/** The scheme name of session-ca's HMAC `Authorization` header. */
export const HMAC_SCHEME = 'SESSION-CA-HMAC-SHA256';
/** The shortest HMAC secret the signer accepts, in bytes. */
export const HMAC_MIN_SECRET_BYTES = 32;

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 1 << 20;

/** The request header of an idempotency key (see `SignerClient.issue`). */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
const KEY_SHAPE = /^[A-Za-z0-9_-]{16,128}$/;

/**
 * How often and how patiently `SignerClient.issue` retries (the Rust
 * client's policy): 3 attempts in all, a random backoff up to 200 ms, then
 * 400 ms, ... at most 2 000 ms, or the answer's `Retry-After`.
 */
export const DEFAULT_RETRY = Object.freeze({ maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 2_000 });

/** A fresh idempotency key: 24 random bytes, base64url without padding (32 characters). */
export function newIdempotencyKey() {
  return randomBytes(24).toString('base64url');
}

/**
 * Milliseconds to wait after `attempts` failed, the last with `retryAfterMs`
 * (`undefined` when the answer had none); `undefined` to give up.
 * @param {{ maxAttempts: number, baseDelayMs: number, maxDelayMs: number }} policy
 * @param {number} attempts @param {number | undefined} retryAfterMs
 * @returns {number | undefined}
 */
export function retryDelayMs(policy, attempts, retryAfterMs) {
  if (attempts >= Math.max(policy.maxAttempts, 1)) return undefined;
  if (retryAfterMs !== undefined) return retryAfterMs > policy.maxDelayMs ? undefined : retryAfterMs;
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(Math.max(attempts - 1, 0), 31));
  return Math.random() * cap;
}

/**
 * `DEFAULT_RETRY` with the settings `given` sets; a setting left
 * `undefined` keeps its default, and one that is not a finite number ≥ 0
 * is refused (a NaN would make every comparison false and retry forever).
 * @param {Partial<{ maxAttempts: number, baseDelayMs: number, maxDelayMs: number }>} [given]
 */
function retryPolicy(given = {}) {
  /** @type {{ maxAttempts: number, baseDelayMs: number, maxDelayMs: number }} */
  const policy = { ...DEFAULT_RETRY };
  for (const [name, value] of Object.entries(given ?? {})) {
    if (!(name in DEFAULT_RETRY)) throw new TypeError(`SignerClient: unknown retry setting ${name}`);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new TypeError(`SignerClient: retry.${name} must be a finite number >= 0, got ${String(value)}`);
    }
    policy[/** @type {keyof typeof policy} */ (name)] = value;
  }
  return Object.freeze(policy);
}

/** Marks the errors of the HTTP exchange itself (connection, TLS, timeout), which a retry may get past. */
const TRANSPORT = Symbol('session-ca transport error');

/** Whether a failure may pass: a transport error, 502, 503, 504, 429 or 409 `idempotency_in_progress`. */
function retryable(error) {
  if (error instanceof SignerError) {
    if ([502, 503, 504, 429].includes(error.status)) return true;
    return error.status === 409 && error.code === 'idempotency_in_progress';
  }
  return Boolean(error && error[TRANSPORT]);
}

/**
 * A refusal from the signer: the HTTP status and the `code` and `message`
 * of its JSON error body `{"error": {"code", "message"}}`. For a non-JSON
 * answer (e.g. an API Gateway or Function URL 403 before the signer ran),
 * `code` is `http_<status>` and `message` the body's `message`/`Message`
 * or its text.
 */
export class SignerError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {string | undefined} [requestId]
   * @param {number | undefined} [retryAfter] the answer's `Retry-After`, seconds
   */
  constructor(status, code, message, requestId, retryAfter) {
    super(`the signer refused the request: HTTP ${status} ${code}: ${message}`);
    this.name = 'SignerError';
    /** @type {number} */
    this.status = status;
    /** @type {string} */
    this.code = code;
    /** The signer's message, without the prefix of `error.message`. @type {string} */
    this.detail = message;
    /** @type {string | undefined} */
    this.requestId = requestId;
    /** The answer's `Retry-After` in seconds, when it had one. @type {number | undefined} */
    this.retryAfter = retryAfter;
  }
}

/**
 * A certificate issued by the signer, with its private key in memory.
 * `util.inspect`, `console.log` and `JSON.stringify` never show the key.
 */
export class IssuedCertificate {
  /** @type {string | undefined} */
  #privateKey;

  /** @param {Record<string, any>} body the signer's JSON response (snake_case) */
  constructor(body) {
    this.#privateKey = body.private_key;
    /** @type {string} */ this.serial = body.serial;
    /** @type {string} */ this.certificate = body.certificate;
    /** @type {string[]} */ this.caChain = Array.isArray(body.ca_chain) ? body.ca_chain : [];
    /** @type {Date} */ this.notBefore = new Date(body.not_before);
    /** @type {Date} */ this.notAfter = new Date(body.not_after);
    /** @type {Date} */ this.renewAfter = new Date(body.renew_after);
    /** @type {string} */ this.keyType = body.key_type;
    /** @type {string} */ this.fingerprintSha256 = body.fingerprint_sha256;
    /** @type {string} */ this.x5tS256 = body['x5t#S256'];
    /** @type {string} */ this.profile = body.profile;
    /** @type {string} */ this.sessionId = body.session_id;
    /** @type {string} */ this.requestId = body.request_id;
    for (const field of ['notBefore', 'notAfter', 'renewAfter']) {
      // @ts-ignore
      if (Number.isNaN(this[field].getTime())) throw new TypeError(`the signer's response has no valid ${field}`);
    }
    if (typeof this.certificate !== 'string') throw new TypeError("the signer's response has no certificate");
  }

  /** The PEM PKCS#8 private key (only in memory; never logged or serialised). */
  get privateKey() {
    return this.#privateKey;
  }

  /** The leaf certificate followed by the CA chain, PEM: what a TLS client presents. */
  get certificateChain() {
    return [this.certificate, ...this.caChain].map((pem) => pem.trimEnd() + '\n').join('');
  }

  /** Everything but the private key. */
  toJSON() {
    const { ...fields } = this;
    return { ...fields, privateKey: this.#privateKey === undefined ? undefined : '[redacted]' };
  }

  [inspect.custom](/** @type {number} */ depth, /** @type {any} */ options, /** @type {typeof inspect} */ insp) {
    const shown = { ...this, privateKey: this.#privateKey === undefined ? undefined : '[redacted]' };
    return `IssuedCertificate ${(insp ?? inspect)(shown, options)}`;
  }
}

/**
 * @typedef {{ accessKeyId: string, secretAccessKey: string, sessionToken?: string, expiration?: Date }} AwsCredentials
 * @typedef {AwsCredentials | (() => Promise<AwsCredentials> | AwsCredentials)} AwsCredentialsOption
 * @typedef {{ type: 'sigv4', region?: string, service: 'lambda' | 'execute-api' | string, credentials?: AwsCredentialsOption }} SigV4Auth
 * @typedef {{ type: 'hmac', keyId: string, secret: Buffer | Uint8Array | string }} HmacAuth
 * @typedef {{ type: 'none' }} NoAuth
 * @typedef {{ url: string | URL, auth?: SigV4Auth | HmacAuth | NoAuth, ca?: string | Buffer | Array<string | Buffer>, timeoutMs?: number }} SignerClientOptions
 * @typedef {{ profile?: string, sessionId?: string, transactionId?: string, claims?: Record<string, unknown>, keyType?: string, ttl?: number }} IssueRequest
 */

/** Credentials from the environment, as Lambda sets them. */
function credentialsFromEnv() {
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(
      'SigV4: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), ' +
        'or pass auth.credentials (e.g. fromNodeProviderChain() of @aws-sdk/credential-providers)',
    );
  }
  const sessionToken = process.env.AWS_SESSION_TOKEN || undefined;
  return { accessKeyId, secretAccessKey, sessionToken };
}

/** @param {string | Buffer | Uint8Array} data */
function sha256Hex(data) {
  return createHash('sha256').update(data).digest('hex');
}

/** 32 random characters of A-Z a-z 0-9 (the signer takes 16 to 64 of A-Z a-z 0-9 - _). */
function hmacNonce() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  while (out.length < 32) {
    for (const b of randomBytes(48)) {
      if (b < 248 && out.length < 32) out += alphabet[b % 62]; // 248 = 4 * 62: no modulo bias
    }
  }
  return out;
}

/**
 * The string an HMAC signature covers: six lines joined by `\n` (scheme,
 * method, path with its query as sent, Unix timestamp, nonce, hex SHA-256
 * of the body). Same as `string_to_sign` in the Rust client.
 * @param {string} method @param {string} pathAndQuery @param {number} timestamp
 * @param {string} nonce @param {string | Buffer | Uint8Array} body
 */
export function hmacStringToSign(method, pathAndQuery, timestamp, nonce, body) {
  return [HMAC_SCHEME, method, pathAndQuery, String(timestamp), nonce, sha256Hex(body)].join('\n');
}

/**
 * The `Authorization` header value for an HMAC-authenticated request.
 * @param {{ keyId: string, secret: Buffer | Uint8Array | string }} key
 * @param {string} method @param {string} pathAndQuery @param {string | Buffer | Uint8Array} body
 * @param {{ timestamp?: number, nonce?: string }} [at] fixed timestamp (Unix seconds) and nonce, for tests
 */
export function hmacAuthorization(key, method, pathAndQuery, body, at = {}) {
  const timestamp = at.timestamp ?? Math.floor(Date.now() / 1000);
  const nonce = at.nonce ?? hmacNonce();
  const signature = createHmac('sha256', key.secret)
    .update(hmacStringToSign(method, pathAndQuery, timestamp, nonce, body))
    .digest('hex');
  return `${HMAC_SCHEME} KeyId=${key.keyId}, Timestamp=${timestamp}, Nonce=${nonce}, Signature=${signature}`;
}

/** A client of one signer. */
export class SignerClient {
  /** @type {URL} */ #base;
  /** @type {string} */ #basePath;
  /** @type {SigV4Auth | HmacAuth | NoAuth} */ #auth;
  /** @type {SignatureV4 | undefined} */ #sigv4;
  /** @type {Buffer | undefined} */ #hmacSecret;
  /** @type {any} */ #ca;
  /** @type {number} */ #timeoutMs;
  /** @type {{ maxAttempts: number, baseDelayMs: number, maxDelayMs: number }} */ #retry;

  /** @param {SignerClientOptions} options */
  constructor(options) {
    if (!options || !options.url) throw new TypeError('SignerClient: url is required');
    const base = new URL(String(options.url));
    if (base.protocol !== 'https:' && base.protocol !== 'http:') {
      throw new TypeError(`SignerClient: url must be http: or https:, got ${base.protocol}`);
    }
    if (base.search || base.hash) throw new TypeError('SignerClient: url must not carry a query or fragment');
    this.#base = base;
    this.#basePath = base.pathname.replace(/\/+$/, ''); // a stage path such as /prod stays
    this.#ca = options.ca;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#retry = retryPolicy(options.retry);
    const auth = options.auth ?? { type: 'none' };
    this.#auth = auth;
    if (auth.type === 'sigv4') {
      const region = auth.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
      if (!region) throw new TypeError('SignerClient: SigV4 needs auth.region (or AWS_REGION)');
      if (!auth.service) throw new TypeError("SignerClient: SigV4 needs auth.service ('lambda' or 'execute-api')");
      const given = auth.credentials;
      /** @type {() => Promise<AwsCredentials>} */
      const credentials =
        typeof given === 'function' ? async () => given() : given ? async () => given : async () => credentialsFromEnv();
      this.#sigv4 = new SignatureV4({
        service: auth.service,
        region,
        credentials,
        sha256: Hash.bind(null, 'sha256'),
        uriEscapePath: true,
        applyChecksum: true,
      });
    } else if (auth.type === 'hmac') {
      if (!auth.keyId || /[\s,]/.test(auth.keyId)) throw new TypeError('SignerClient: HMAC needs a keyId without spaces or commas');
      const secret = typeof auth.secret === 'string' ? Buffer.from(auth.secret, 'utf8') : Buffer.from(auth.secret ?? []);
      if (secret.length < HMAC_MIN_SECRET_BYTES) {
        throw new TypeError(`SignerClient: an HMAC secret must be at least ${HMAC_MIN_SECRET_BYTES} bytes, got ${secret.length}`);
      }
      this.#hmacSecret = secret;
    } else if (auth.type !== 'none') {
      throw new TypeError(`SignerClient: unknown auth type ${/** @type {any} */ (auth).type}`);
    }
  }

  /** The signer's base URL (with its stage path, if any). */
  get url() {
    return this.#base.href;
  }

  /**
   * Asks for a certificate: `POST {url}/v1/certificates`.
   *
   * Every call sends an `Idempotency-Key`: `options.idempotencyKey` (16 to
   * 128 characters of `A-Z a-z 0-9 - _`; a `TypeError` before anything is
   * sent otherwise) or a fresh one. The call's retries (`retry` of the
   * client's options: transport errors, 502, 503, 504, 429 and 409
   * `idempotency_in_progress`) reuse it with a fresh signature, so a signer
   * with a store issues one certificate for all of them.
   * @param {IssueRequest} [request]
   * @param {{ idempotencyKey?: string }} [options]
   * @returns {Promise<IssuedCertificate>}
   */
  async issue(request = {}, options = {}) {
    const given = options.idempotencyKey;
    if (given !== undefined && !(typeof given === 'string' && KEY_SHAPE.test(given))) {
      throw new TypeError('SignerClient: an idempotency key must be 16 to 128 characters of A-Z a-z 0-9 - _');
    }
    const key = given ?? newIdempotencyKey();
    const body = issueBody(request);
    for (let attempts = 1; ; attempts++) {
      let answer;
      let failure;
      try {
        answer = await this.#send('POST', '/v1/certificates', {}, body, { [IDEMPOTENCY_HEADER]: key });
      } catch (error) {
        if (!retryable(error)) throw error;
        failure = error;
      }
      if (answer) {
        if (answer.status !== 201) {
          throw new SignerError(answer.status, 'unexpected_status', `expected 201, got ${answer.status}`);
        }
        return new IssuedCertificate(JSON.parse(answer.body.toString('utf8')));
      }
      const retryAfterMs = failure instanceof SignerError && failure.retryAfter !== undefined ? failure.retryAfter * 1000 : undefined;
      const wait = retryDelayMs(this.#retry, attempts, retryAfterMs);
      if (wait === undefined) throw failure;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /**
   * Checks a request against its profile without issuing anything
   * (`?dry_run=true`); resolves to the signer's plan (snake_case JSON).
   * @param {IssueRequest} [request]
   * @returns {Promise<Record<string, any>>}
   */
  async check(request = {}) {
    const { body } = await this.#send('POST', '/v1/certificates', { dry_run: 'true' }, issueBody(request));
    return JSON.parse(body.toString('utf8'));
  }

  /**
   * The profile's CA chain, PEM (issuing CA first): `GET {url}/v1/ca`.
   * @param {{ profile?: string }} [options]
   * @returns {Promise<string>}
   */
  async caChain(options = {}) {
    const query = options.profile ? { profile: options.profile } : {};
    const { body } = await this.#send('GET', '/v1/ca', query, undefined);
    return body.toString('utf8');
  }

  /**
   * @param {string} method @param {string} route
   * @param {Record<string, string>} query @param {Buffer | undefined} body
   * @param {Record<string, string>} [unsigned] headers added after signing (the idempotency key, as the Rust client does)
   * @returns {Promise<{ status: number, body: Buffer }>}
   */
  async #send(method, route, query, body, unsigned = {}) {
    const base = this.#base;
    const path = this.#basePath + route;
    const search = new URLSearchParams(query).toString();
    const pathAndQuery = search ? `${path}?${search}` : path;
    /** @type {Record<string, string>} */
    let headers = { host: base.host, accept: 'application/json' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    }
    const auth = this.#auth;
    if (auth.type === 'hmac') {
      headers.authorization = hmacAuthorization(
        { keyId: auth.keyId, secret: /** @type {Buffer} */ (this.#hmacSecret) },
        method,
        pathAndQuery,
        body ?? Buffer.alloc(0),
      );
    } else if (this.#sigv4) {
      const signed = await this.#sigv4.sign({
        method,
        protocol: base.protocol,
        hostname: base.hostname,
        port: base.port ? Number(base.port) : undefined,
        path,
        query,
        headers,
        body: body ?? '',
      });
      headers = /** @type {Record<string, string>} */ (signed.headers);
    }
    headers = { ...headers, ...unsigned };
    const response = await this.#request(method, pathAndQuery, headers, body);
    if (response.status !== 200 && response.status !== 201) {
      throw errorFrom(response.status, response.body, response.requestId, response.retryAfter);
    }
    return response;
  }

  /**
   * @param {string} method @param {string} pathAndQuery
   * @param {Record<string, string>} headers @param {Buffer | undefined} body
   * @returns {Promise<{ status: number, body: Buffer, requestId: string | undefined, retryAfter: number | undefined }>}
   */
  #request(method, pathAndQuery, headers, body) {
    const base = this.#base;
    const transport = base.protocol === 'https:' ? https : http;
    /** @type {https.RequestOptions} */
    const options = {
      method,
      hostname: base.hostname.replace(/^\[|\]$/g, ''),
      port: base.port || undefined,
      path: pathAndQuery,
      headers,
      agent: false,
      timeout: this.#timeoutMs,
    };
    if (base.protocol === 'https:' && this.#ca) options.ca = this.#ca;
    return new Promise((resolve, reject) => {
      const req = transport.request(options, (res) => {
        /** @type {Buffer[]} */
        const chunks = [];
        let size = 0;
        res.on('data', (chunk) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new Error('the signer sent more than 1 MiB'));
          else chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks),
            requestId: /** @type {string | undefined} */ (res.headers['x-request-id']),
            retryAfter: parseRetryAfter(res.headers['retry-after']),
          }),
        );
        res.on('error', (error) => reject(Object.assign(error, { [TRANSPORT]: true })));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer from the signer within ${this.#timeoutMs} ms`)));
      req.on('error', (error) => reject(Object.assign(error, { [TRANSPORT]: true })));
      req.end(body);
    });
  }

  [inspect.custom]() {
    return `SignerClient { url: '${this.#base.href}', auth: '${this.#auth.type}' }`;
  }
}

/** @param {IssueRequest} request */
function issueBody(request) {
  /** @type {Record<string, unknown>} */
  const wire = {};
  if (request.profile !== undefined) wire.profile = request.profile;
  if (request.sessionId !== undefined) wire.session_id = request.sessionId;
  if (request.transactionId !== undefined) wire.transaction_id = request.transactionId;
  if (request.claims !== undefined) wire.claims = request.claims;
  if (request.keyType !== undefined) wire.key_type = request.keyType;
  if (request.ttl !== undefined) wire.ttl_seconds = request.ttl;
  return Buffer.from(JSON.stringify(wire), 'utf8');
}

/**
 * `Retry-After` in integer seconds (its HTTP-date form, which the signer does not send, is ignored).
 * @param {string | string[] | undefined} value
 */
function parseRetryAfter(value) {
  const text = typeof value === 'string' ? value.trim() : '';
  return /^[0-9]+$/.test(text) ? Number(text) : undefined;
}

/**
 * @param {number} status @param {Buffer} raw @param {string | undefined} requestId
 * @param {number | undefined} [retryAfter]
 */
function errorFrom(status, raw, requestId, retryAfter) {
  const text = raw.toString('utf8');
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const error = parsed && typeof parsed === 'object' ? parsed.error : undefined;
  if (error && typeof error.code === 'string') {
    return new SignerError(status, error.code, String(error.message ?? ''), requestId, retryAfter);
  }
  const message = parsed?.message ?? parsed?.Message ?? (text.trim().slice(0, 500) || http.STATUS_CODES[status] || '');
  return new SignerError(status, `http_${status}`, String(message), requestId, retryAfter);
}

/**
 * @typedef {https.AgentOptions & { ca?: string | Buffer | Array<string | Buffer> }} AgentOptions
 * @typedef {{ now?: () => Date | number }} SessionCertificateOptions
 */

/**
 * One session's certificate, kept in memory and renewed when its
 * `renewAfter` has passed. Concurrent callers share one in-flight issuance.
 */
export class SessionCertificate {
  /** @type {SignerClient} */ #client;
  /** @type {IssueRequest} */ #request;
  /** @type {() => number} */ #now;
  /** @type {IssuedCertificate | undefined} */ #current;
  /** @type {Promise<IssuedCertificate> | undefined} */ #inFlight;
  /** @type {Map<string, https.Agent>} */ #agents = new Map();
  /** @type {Map<string, any>} */ #dispatchers = new Map();
  /** @type {string | undefined} */ #agentsFor;

  /**
   * @param {SignerClient} client
   * @param {IssueRequest} [request] sent again at every renewal (without a
   *   `sessionId`, the one the signer generated first is kept, so every
   *   certificate names the same session)
   * @param {SessionCertificateOptions} [options] `now`: the clock (for tests)
   */
  constructor(client, request = {}, options = {}) {
    this.#client = client;
    this.#request = { ...request };
    const now = options.now;
    this.#now = now ? () => Number(now()) : () => Date.now();
  }

  /**
   * The current certificate, issuing or renewing it first when there is
   * none or `now >= renewAfter`. If a renewal fails while the current
   * certificate is still valid (`now < notAfter`), that one is returned
   * and the next call tries again; otherwise the error is thrown.
   * @returns {Promise<IssuedCertificate>}
   */
  async current() {
    const now = this.#now();
    const cert = this.#current;
    if (cert && now < cert.renewAfter.getTime()) return cert;
    if (!this.#inFlight) {
      this.#inFlight = this.#client.issue(this.#request).then(
        (issued) => {
          this.#current = issued;
          this.#inFlight = undefined;
          // One session: renewals name the session id the signer generated.
          if (this.#request.sessionId === undefined) this.#request.sessionId = issued.sessionId;
          return issued;
        },
        (error) => {
          this.#inFlight = undefined;
          throw error;
        },
      );
    }
    try {
      return await this.#inFlight;
    } catch (error) {
      if (cert && this.#now() < cert.notAfter.getTime()) return cert;
      throw error;
    }
  }

  /**
   * An `https.Agent` presenting the current certificate (leaf + chain) and
   * its key from memory, for `https.request(url, { agent })` and the
   * libraries that take an agent. Call it for every request (it is cheap):
   * the same agent comes back until the certificate is renewed, then a new
   * one; the old agent closes its idle connections.
   * @param {AgentOptions} [options] `ca` to trust the backend; any other https.Agent option
   * @returns {Promise<https.Agent>}
   */
  async httpsAgent(options = {}) {
    const cert = await this.current();
    this.#rotate(cert);
    const key = optionsKey(options);
    let agent = this.#agents.get(key);
    if (!agent) {
      agent = new https.Agent({
        keepAlive: true,
        ...options,
        key: cert.privateKey,
        cert: cert.certificateChain,
      });
      this.#agents.set(key, agent);
    }
    return agent;
  }

  /**
   * An undici `Agent` (a dispatcher for undici's `request`/`fetch`)
   * presenting the current certificate from memory; renewed like
   * `httpsAgent`. Needs the `undici` package installed.
   * @param {{ ca?: string | Buffer | Array<string | Buffer>, [option: string]: unknown }} [options] TLS options for `connect`
   * @returns {Promise<any>}
   */
  async dispatcher(options = {}) {
    const cert = await this.current();
    this.#rotate(cert);
    const key = optionsKey(options);
    let dispatcher = this.#dispatchers.get(key);
    if (!dispatcher) {
      let undici;
      try {
        undici = await import('undici');
      } catch (error) {
        throw new Error('SessionCertificate.dispatcher() needs the undici package: npm install undici', { cause: error });
      }
      dispatcher = new undici.Agent({ connect: { ...options, key: cert.privateKey, cert: cert.certificateChain } });
      this.#dispatchers.set(key, dispatcher);
    }
    return dispatcher;
  }

  /** Closes every agent and dispatcher (idle connections at once, busy ones when done). */
  async close() {
    this.#retire();
  }

  /** @param {IssuedCertificate} cert */
  #rotate(cert) {
    if (this.#agentsFor !== cert.serial) {
      this.#retire();
      this.#agentsFor = cert.serial;
    }
  }

  #retire() {
    for (const agent of this.#agents.values()) retireAgent(agent);
    for (const dispatcher of this.#dispatchers.values()) dispatcher.close().catch(() => {});
    this.#agents.clear();
    this.#dispatchers.clear();
  }

  [inspect.custom]() {
    return `SessionCertificate { serial: ${this.#current ? `'${this.#current.serial}'` : 'none yet'} }`;
  }
}

/**
 * Stops an agent from keeping connections: idle sockets close now, busy
 * ones when their response ends.
 * @param {https.Agent} agent
 */
function retireAgent(agent) {
  /** @type {any} */ (agent).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) socket.destroy();
  }
}

/** Each function an agent's options held, by a number of its own (its name says nothing: every inline `checkServerIdentity` has the same). */
const functionIds = new WeakMap();
let lastFunctionId = 0;

/**
 * A cache key for agent options: equal for equal values and for the very
 * same functions, so that options with another `checkServerIdentity` (a
 * pinning check) never get an agent made with the first one. Pass the same
 * function object to keep the same agent.
 * @param {object} options
 */
function optionsKey(options) {
  return JSON.stringify(options, (_, value) => {
    if (typeof value !== 'function') return value;
    if (!functionIds.has(value)) functionIds.set(value, ++lastFunctionId);
    return `fn#${functionIds.get(value)}`;
  });
}
