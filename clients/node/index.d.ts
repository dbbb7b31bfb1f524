// Types of session-ca-client (src/index.js).

import type { Agent as HttpsAgent, AgentOptions as HttpsAgentOptions } from 'node:https';

/** The scheme name of session-ca's HMAC `Authorization` header. */
export declare const HMAC_SCHEME: 'SESSION-CA-HMAC-SHA256';
/** The shortest HMAC secret the signer accepts, in bytes (32). */
export declare const HMAC_MIN_SECRET_BYTES: number;

/** AWS credentials, as the AWS SDK v3 resolves them. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** Static credentials, or any AWS SDK v3 credential provider (e.g. `fromNodeProviderChain()`). */
export type AwsCredentialsOption = AwsCredentials | (() => Promise<AwsCredentials> | AwsCredentials);

/** SigV4 (the signer behind a Lambda Function URL or API Gateway with IAM auth). */
export interface SigV4Auth {
  type: 'sigv4';
  /** Default: `AWS_REGION`, then `AWS_DEFAULT_REGION`. */
  region?: string;
  /** `lambda` for a Function URL, `execute-api` for API Gateway. */
  service: 'lambda' | 'execute-api' | (string & {});
  /** Default: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` at each request (what Lambda sets). */
  credentials?: AwsCredentialsOption;
}

/** session-ca's `SESSION-CA-HMAC-SHA256` scheme (`server.auth = "hmac"`). */
export interface HmacAuth {
  type: 'hmac';
  keyId: string;
  /** At least 32 bytes; a string is taken as its UTF-8 bytes. */
  secret: Buffer | Uint8Array | string;
}

/** No authentication (`server.auth = "none"`, loopback only). */
export interface NoAuth {
  type: 'none';
}

export type TlsCa = string | Buffer | Array<string | Buffer>;

export interface SignerClientOptions {
  /** The signer's base URL; may carry a stage or base path (`https://…/prod`). */
  url: string | URL;
  /** Default: none. */
  auth?: SigV4Auth | HmacAuth | NoAuth;
  /** PEM roots to trust for an `https:` signer (default: Node's roots). */
  ca?: TlsCa;
  /** Per request; default 10 000. */
  timeoutMs?: number;
  /** How `issue` retries; each field defaults to `DEFAULT_RETRY`'s. `{ maxAttempts: 1 }`: no retry. */
  retry?: Partial<RetryPolicy>;
}

/**
 * How often and how patiently `SignerClient.issue` retries a failure that
 * may pass (a transport error, 502, 503, 504, 429, 409
 * `idempotency_in_progress`), under one `Idempotency-Key`: before attempt
 * n + 1 it waits the answer's `Retry-After`, else a random time up to
 * `min(maxDelayMs, baseDelayMs × 2^(n-1))`; a `Retry-After` beyond
 * `maxDelayMs` rejects at once. Each attempt may take up to `timeoutMs`,
 * so the worst case is about `maxAttempts × timeoutMs` plus the waits.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included (0 counts as 1). Default 3. */
  maxAttempts: number;
  /** Default 200. */
  baseDelayMs: number;
  /** Default 2 000. */
  maxDelayMs: number;
}

/** 3 attempts, 200 ms, 2 000 ms. */
export declare const DEFAULT_RETRY: Readonly<RetryPolicy>;
/** The request header of an idempotency key. */
export declare const IDEMPOTENCY_HEADER: 'Idempotency-Key';
/** A fresh idempotency key: 24 random bytes, base64url (32 characters). */
export declare function newIdempotencyKey(): string;
/** Milliseconds to wait after `attempts` failed (the last with `retryAfterMs`), or `undefined` to give up. */
export declare function retryDelayMs(policy: RetryPolicy, attempts: number, retryAfterMs: number | undefined): number | undefined;

/** What to ask for (camelCase; sent as the API's snake_case fields). Every field is optional. */
export interface IssueRequest {
  profile?: string;
  sessionId?: string;
  transactionId?: string;
  /** Profile-defined claims by name: strings, or any JSON for `json` claims. */
  claims?: Record<string, unknown>;
  keyType?: 'ecdsa-p256' | 'ecdsa-p384' | 'ed25519' | 'rsa-2048' | 'rsa-3072' | (string & {});
  /** Lifetime in seconds (`ttl_seconds`); the profile's default when absent. */
  ttl?: number;
}

/** A refusal of the signer: HTTP status plus the `code` and `message` of its JSON error body. */
export declare class SignerError extends Error {
  name: 'SignerError';
  status: number;
  /** The API's error code (`ttl_too_long`, `unauthenticated`, …), or `http_<status>` for a non-JSON answer. */
  code: string;
  /** The signer's message. */
  detail: string;
  requestId: string | undefined;
  /** The answer's `Retry-After`, in seconds, when it had one. */
  retryAfter: number | undefined;
  constructor(status: number, code: string, message: string, requestId?: string, retryAfter?: number);
}

/** An issued certificate. `util.inspect`, `console.log` and `JSON.stringify` never show the private key. */
export declare class IssuedCertificate {
  /** Lower-case hex. */
  serial: string;
  /** PEM leaf certificate. */
  certificate: string;
  /** PEM CA certificates, issuing CA first. */
  caChain: string[];
  notBefore: Date;
  notAfter: Date;
  /** When to renew (70 % of the lifetime). */
  renewAfter: Date;
  keyType: string;
  fingerprintSha256: string;
  /** RFC 8705 thumbprint (`x5t#S256`). */
  x5tS256: string;
  profile: string;
  sessionId: string;
  requestId: string;
  /** PEM PKCS#8 private key, in memory only. */
  readonly privateKey: string | undefined;
  /** Leaf followed by the chain, PEM. */
  readonly certificateChain: string;
  constructor(body: Record<string, unknown>);
  /** Every field but the private key (shown as `[redacted]`). */
  toJSON(): Record<string, unknown>;
}

/** A client of one signer. */
export declare class SignerClient {
  constructor(options: SignerClientOptions);
  readonly url: string;
  /**
   * `POST {url}/v1/certificates`; rejects with `SignerError` on a refusal.
   * Sends `Idempotency-Key` (`options.idempotencyKey`, or a fresh key) and
   * retries what may pass under it (see `RetryPolicy`).
   */
  issue(request?: IssueRequest, options?: { idempotencyKey?: string }): Promise<IssuedCertificate>;
  /** `POST {url}/v1/certificates?dry_run=true`: the signer's plan (snake_case), nothing issued. */
  check(request?: IssueRequest): Promise<Record<string, any>>;
  /** `GET {url}/v1/ca`: the profile's chain, PEM, issuing CA first. */
  caChain(options?: { profile?: string }): Promise<string>;
}

export interface SessionCertificateOptions {
  /** The clock (default `Date.now`); for tests. */
  now?: () => Date | number;
}

export type AgentOptions = Omit<HttpsAgentOptions, 'key' | 'cert'>;

/** One session's certificate in memory, renewed at `renewAfter`. */
export declare class SessionCertificate {
  constructor(client: SignerClient, request?: IssueRequest, options?: SessionCertificateOptions);
  /**
   * The certificate, issued or renewed first when there is none or `now >= renewAfter`.
   * Concurrent callers share one issuance. A failed renewal returns the still-valid
   * current certificate (the next call retries); with none valid, it rejects.
   */
  current(): Promise<IssuedCertificate>;
  /** An `https.Agent` (keep-alive) presenting the current certificate; a new one after each renewal. */
  httpsAgent(options?: AgentOptions): Promise<HttpsAgent>;
  /**
   * An undici `Agent` presenting the current certificate, for undici's `request`/`fetch`
   * (`{ dispatcher }`); needs `undici` installed. Typed `any` so that this package's types
   * do not require undici's.
   */
  dispatcher(options?: { ca?: TlsCa; [option: string]: unknown }): Promise<any>;
  /** Closes the agents and dispatchers made so far. */
  close(): Promise<void>;
}

/** The six-line string an HMAC signature covers. */
export declare function hmacStringToSign(
  method: string,
  pathAndQuery: string,
  timestamp: number,
  nonce: string,
  body: string | Buffer | Uint8Array,
): string;

/** The `Authorization` header value for an HMAC-signed request (fresh nonce, current time by default). */
export declare function hmacAuthorization(
  key: { keyId: string; secret: Buffer | Uint8Array | string },
  method: string,
  pathAndQuery: string,
  body: string | Buffer | Uint8Array,
  at?: { timestamp?: number; nonce?: string },
): string;
