/*
 * MtlsClient: a Java 17 client that gets a short-lived client certificate
 * from a session-ca signer and calls a backend over mutual TLS with it.
 *
 * No KeyStore file, no password in an environment variable: the signer
 * returns a PKCS#12 key store (key, certificate and CA chain) with a fresh
 * random password inside its JSON reply, and the program loads it from
 * memory into java.security.KeyStore. Nothing is written to disk. Only the
 * JDK is used (java.net.http, javax.net.ssl); there are no dependencies.
 *
 * Run it as a single-file program (JDK 11+ launches a source file directly).
 * With a local signer and the example backend, from the repository root:
 *
 *   cargo run -- serve &                                # signer on 127.0.0.1:8080
 *   curl -s http://127.0.0.1:8080/v1/ca > ca.pem         # its CA chain, for the backend
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
 *       -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 1 \
 *       -keyout server-key.pem -out server.pem          # the backend's identity
 *   cargo run --example mtls_backend -- --ca ca.pem \
 *       --cert server.pem --key server-key.pem &        # backend on 127.0.0.1:8443
 *   java examples/java/MtlsClient.java \
 *       --signer http://127.0.0.1:8080 \
 *       --backend https://localhost:8443/ \
 *       --backend-ca server.pem \
 *       --session-id 92fea10a-0905-40cc-aca1-54ee52e89c71 \
 *       --transaction-id tx-2018-11-08-0001
 *
 * Flags:
 *   --signer URL          base URL of the signer; the program POSTs to URL/v1/certificates
 *   --backend URL         the HTTPS URL to GET with the client certificate
 *   --backend-ca FILE     PEM file with the certificate(s) that the backend's
 *                         server certificate must chain to (the trust anchors)
 *   --session-id ID       optional: the session_id claim (the default profile
 *                         wants a UUID); when absent the signer picks a UUID v4
 *   --transaction-id ID   optional: the transaction_id claim
 *   --key-type TYPE       optional: ecdsa-p256 (signer's default), ecdsa-p384 or ed25519
 *   --profile NAME        optional: the signer profile (the signer's "default" when absent)
 *
 * Output: the backend's HTTP status on the first line of stdout ("HTTP 200"),
 * then its body. Exit status 0 when the backend answered 2xx; 1 on any
 * failure (the signer refused, a TLS handshake failed, the backend answered
 * something else), with the reason on stderr; 2 for bad command-line flags.
 *
 * For developers used to KeyStore files:
 *   -Djavax.net.ssl.keyStore=client.p12 + keyStorePassword
 *       -> KeyStore.load(bytes from the signer, password from the signer)
 *   -Djavax.net.ssl.trustStore=truststore.p12
 *       -> a KeyStore built in memory from the backend CA's PEM
 *   the JVM-wide default SSLContext
 *       -> one SSLContext for this client, TLS 1.3 only
 * The certificate is valid for minutes (the signer's profile decides); get a
 * new one per session or transaction instead of keeping one around.
 *
 * When the backend does not trust the signer's CA, the JDK offers no
 * certificate at all (it sends one only if its chain reaches a CA the backend
 * names in its certificate request), and the handshake fails with the
 * backend's alert "certificate_required".
 *
 * This signer is the local development one (auth "none"). A production signer
 * authenticates its callers (IAM in AWS Lambda, or HMAC-signed requests); add
 * that to postToSigner() as your deployment requires.
 */

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;

public final class MtlsClient {

    /** A failure with a message meant for the person running the program. */
    static final class Failure extends Exception {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }

        Failure(String message, Throwable cause) {
            super(message + ": " + describe(cause), cause);
        }

        /** "ConnectException", "NoSuchFileException: ca.pem", ...: the type says what went wrong. */
        private static String describe(Throwable t) {
            String text = t.getMessage();
            String type = t.getClass().getSimpleName();
            return text == null || text.isBlank() ? type : type + ": " + text;
        }
    }

    /** A failure caused by the command line (exit status 2). */
    static final class UsageError extends Exception {
        private static final long serialVersionUID = 1L;

        UsageError(String message) {
            super(message);
        }
    }

    static final Duration TIMEOUT = Duration.ofSeconds(30);

    public static void main(String[] args) {
        try {
            Map<String, String> flags = parseFlags(args);
            System.exit(run(flags));
        } catch (UsageError e) {
            System.err.println("MtlsClient: " + e.getMessage());
            System.err.println("usage: java MtlsClient.java --signer URL --backend URL --backend-ca FILE"
                    + " [--session-id ID] [--transaction-id ID] [--key-type TYPE] [--profile NAME]");
            System.exit(2);
        } catch (Failure e) {
            System.err.println("MtlsClient: " + e.getMessage());
            System.exit(1);
        }
    }

    static int run(Map<String, String> flags) throws Failure {
        // 1. Trust the backend's CA only (not the JDK's cacerts). Read it,
        //    and check the backend URL, first: a mistake costs no certificate.
        String backendUrl = flags.get("--backend");
        URI backendUri = uri(backendUrl, "--backend");
        if (!"https".equalsIgnoreCase(backendUri.getScheme())) {
            throw new Failure("--backend " + backendUrl + " is not an https:// URL");
        }
        KeyStore trustStore = trustStoreFromPem(Path.of(flags.get("--backend-ca")));

        // 2. Ask the signer for a certificate, packed as a PKCS#12 key store.
        IssuedKeyStore issued = postToSigner(flags);

        // 3. Load it from memory: the same KeyStore API as for a .p12 file.
        SSLContext tls;
        try {
            KeyStore keyStore = KeyStore.getInstance("PKCS12");
            keyStore.load(new ByteArrayInputStream(issued.pkcs12()), issued.password());
            KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            // The signer protects the key with the store password.
            keys.init(keyStore, issued.password());
            TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            trust.init(trustStore);

            // 4. One TLS 1.3 context for this client.
            tls = SSLContext.getInstance("TLSv1.3");
            tls.init(keys.getKeyManagers(), trust.getTrustManagers(), null);
        } catch (IOException | GeneralSecurityException e) {
            throw new Failure("cannot load the key store from the signer", e);
        } finally {
            // The password is no longer needed once the key managers hold the key.
            Arrays.fill(issued.password(), '\0');
        }

        // 5. Call the backend with the client certificate (HTTP/2 or 1.1, as ALPN decides).
        SSLParameters parameters = new SSLParameters();
        parameters.setProtocols(new String[] {"TLSv1.3"});
        HttpClient backend = HttpClient.newBuilder()
                .sslContext(tls)
                .sslParameters(parameters)
                .connectTimeout(TIMEOUT)
                .build();
        HttpRequest request = HttpRequest.newBuilder(backendUri)
                .timeout(TIMEOUT)
                .GET()
                .build();
        HttpResponse<String> response;
        try {
            response = backend.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            // In TLS 1.3 the backend refuses a client certificate after the
            // client has finished its side of the handshake, so the alert
            // may surface as an SSLException wrapped in a plain IOException.
            if (tlsFailure(e)) {
                throw new Failure("TLS handshake with the backend " + backendUrl + " failed", e);
            }
            throw new Failure("cannot call the backend " + backendUrl, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Failure("interrupted while calling the backend");
        }
        System.out.println("HTTP " + response.statusCode());
        System.out.println(response.body());
        if (response.statusCode() / 100 != 2) {
            throw new Failure("the backend answered HTTP " + response.statusCode());
        }
        return 0;
    }

    /** Whether the failure, or one of its causes, is a TLS failure. */
    static boolean tlsFailure(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof SSLException) {
                return true;
            }
        }
        return false;
    }

    /** The key store bytes and password from the signer's reply. */
    record IssuedKeyStore(byte[] pkcs12, char[] password) {}

    /** POSTs the request to SIGNER/v1/certificates and reads pkcs12.base64 and pkcs12.password. */
    static IssuedKeyStore postToSigner(Map<String, String> flags) throws Failure {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("pkcs12", Boolean.TRUE);
        copyFlag(flags, "--profile", body, "profile");
        copyFlag(flags, "--session-id", body, "session_id");
        copyFlag(flags, "--transaction-id", body, "transaction_id");
        copyFlag(flags, "--key-type", body, "key_type");

        String signer = flags.get("--signer").replaceAll("/+$", "");
        URI endpoint = uri(signer + "/v1/certificates", "--signer");
        HttpRequest request = HttpRequest.newBuilder(endpoint)
                .timeout(TIMEOUT)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(Json.write(body)))
                .build();
        HttpResponse<String> response;
        try {
            response = HttpClient.newBuilder().connectTimeout(TIMEOUT).build()
                    .send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new Failure("cannot reach the signer at " + endpoint, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Failure("interrupted while calling the signer");
        }

        Object reply;
        try {
            reply = Json.parse(response.body());
        } catch (IllegalArgumentException e) {
            throw new Failure("the signer answered HTTP " + response.statusCode()
                    + " with a body that is not JSON (" + e.getMessage() + ")");
        }
        if (response.statusCode() != 201) {
            // Errors are {"error": {"code": "...", "message": "..."}}.
            Object code = Json.path(reply, "error", "code");
            Object message = Json.path(reply, "error", "message");
            if (code instanceof String && message instanceof String) {
                throw new Failure("the signer refused (HTTP " + response.statusCode() + "): "
                        + code + ": " + message);
            }
            throw new Failure("the signer answered HTTP " + response.statusCode() + ": " + response.body());
        }

        Object base64 = Json.path(reply, "pkcs12", "base64");
        Object password = Json.path(reply, "pkcs12", "password");
        if (!(base64 instanceof String) || !(password instanceof String)) {
            throw new Failure("the signer's reply has no pkcs12.base64 and pkcs12.password strings"
                    + " (is this a session-ca signer that supports \"pkcs12\": true?)");
        }
        byte[] der;
        try {
            der = Base64.getDecoder().decode((String) base64);
        } catch (IllegalArgumentException e) {
            throw new Failure("pkcs12.base64 in the signer's reply is not base64", e);
        }
        return new IssuedKeyStore(der, ((String) password).toCharArray());
    }

    /** A KeyStore holding every certificate of a PEM file as a trusted entry. */
    static KeyStore trustStoreFromPem(Path pem) throws Failure {
        Collection<? extends Certificate> certificates;
        try (InputStream in = Files.newInputStream(pem)) {
            certificates = CertificateFactory.getInstance("X.509").generateCertificates(in);
        } catch (IOException e) {
            throw new Failure("cannot read --backend-ca " + pem, e);
        } catch (GeneralSecurityException e) {
            throw new Failure("--backend-ca " + pem + " is not a PEM certificate file", e);
        }
        if (certificates.isEmpty()) {
            throw new Failure("--backend-ca " + pem + " holds no certificate");
        }
        try {
            KeyStore store = KeyStore.getInstance("PKCS12");
            store.load(null, null);
            int i = 0;
            for (Certificate certificate : certificates) {
                store.setCertificateEntry("backend-ca-" + i++, certificate);
            }
            return store;
        } catch (IOException | GeneralSecurityException e) {
            throw new Failure("cannot build a trust store from " + pem, e);
        }
    }

    static URI uri(String text, String flag) throws Failure {
        try {
            URI uri = URI.create(text);
            if (uri.getScheme() == null || uri.getHost() == null) {
                throw new IllegalArgumentException("no scheme or host");
            }
            return uri;
        } catch (IllegalArgumentException e) {
            throw new Failure(flag + " " + text + " is not a URL", e);
        }
    }

    static void copyFlag(Map<String, String> flags, String flag, Map<String, Object> body, String field) {
        String value = flags.get(flag);
        if (value != null) {
            body.put(field, value);
        }
    }

    static final List<String> REQUIRED = List.of("--signer", "--backend", "--backend-ca");
    static final List<String> OPTIONAL = List.of("--session-id", "--transaction-id", "--key-type", "--profile");

    static Map<String, String> parseFlags(String[] args) throws UsageError {
        Map<String, String> flags = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            String value = null;
            int eq = flag.indexOf('=');
            if (flag.startsWith("--") && eq > 0) {
                value = flag.substring(eq + 1);
                flag = flag.substring(0, eq);
            }
            if (!REQUIRED.contains(flag) && !OPTIONAL.contains(flag)) {
                throw new UsageError("unknown argument " + args[i]);
            }
            if (value == null) {
                if (i + 1 >= args.length) {
                    throw new UsageError(flag + " needs a value");
                }
                value = args[++i];
            }
            if (flags.put(flag, value) != null) {
                throw new UsageError(flag + " given twice");
            }
        }
        for (String flag : REQUIRED) {
            if (!flags.containsKey(flag)) {
                throw new UsageError(flag + " is required");
            }
        }
        return flags;
    }

    /**
     * Just enough JSON (RFC 8259) for this program: a complete parser into
     * Map / List / String / Double / Boolean / null, and a writer for flat
     * objects of strings and booleans. Real applications would use their
     * JSON library (Jackson, Gson, JSON-B) instead.
     */
    static final class Json {
        private final String text;
        private int pos;

        private Json(String text) {
            this.text = text;
        }

        /** Parses a JSON document; IllegalArgumentException says where it is wrong. */
        static Object parse(String text) {
            Json parser = new Json(text);
            parser.skipSpace();
            Object value = parser.value(0);
            parser.skipSpace();
            if (parser.pos != text.length()) {
                throw parser.error("text after the JSON value");
            }
            return value;
        }

        /** The value at a path of object keys, or null if any step is missing or not an object. */
        static Object path(Object value, String... keys) {
            for (String key : keys) {
                if (!(value instanceof Map)) {
                    return null;
                }
                value = ((Map<?, ?>) value).get(key);
            }
            return value;
        }

        /** Writes a flat object of strings and booleans. */
        static String write(Map<String, Object> object) {
            StringBuilder out = new StringBuilder("{");
            for (Map.Entry<String, Object> field : object.entrySet()) {
                if (out.length() > 1) {
                    out.append(',');
                }
                writeString(out, field.getKey());
                out.append(':');
                Object value = field.getValue();
                if (value instanceof Boolean) {
                    out.append(value);
                } else {
                    writeString(out, (String) value);
                }
            }
            return out.append('}').toString();
        }

        private static void writeString(StringBuilder out, String s) {
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    case '\n' -> out.append("\\n");
                    case '\r' -> out.append("\\r");
                    case '\t' -> out.append("\\t");
                    default -> {
                        if (c < 0x20) {
                            out.append(String.format("\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                    }
                }
            }
            out.append('"');
        }

        private static final int MAX_DEPTH = 64;

        private Object value(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("nested too deeply");
            }
            if (pos >= text.length()) {
                throw error("unexpected end of text");
            }
            char c = text.charAt(pos);
            switch (c) {
                case '{':
                    return object(depth);
                case '[':
                    return array(depth);
                case '"':
                    return string();
                case 't':
                    return literal("true", Boolean.TRUE);
                case 'f':
                    return literal("false", Boolean.FALSE);
                case 'n':
                    return literal("null", null);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        return number();
                    }
                    throw error("unexpected character '" + c + "'");
            }
        }

        private Map<String, Object> object(int depth) {
            Map<String, Object> object = new LinkedHashMap<>();
            pos++; // {
            skipSpace();
            if (peek() == '}') {
                pos++;
                return object;
            }
            while (true) {
                skipSpace();
                if (peek() != '"') {
                    throw error("expected a string key");
                }
                String key = string();
                skipSpace();
                expect(':');
                skipSpace();
                if (object.put(key, value(depth + 1)) != null) {
                    throw error("duplicate key \"" + key + "\"");
                }
                skipSpace();
                if (peek() == ',') {
                    pos++;
                } else {
                    expect('}');
                    return object;
                }
            }
        }

        private List<Object> array(int depth) {
            List<Object> array = new ArrayList<>();
            pos++; // [
            skipSpace();
            if (peek() == ']') {
                pos++;
                return array;
            }
            while (true) {
                skipSpace();
                array.add(value(depth + 1));
                skipSpace();
                if (peek() == ',') {
                    pos++;
                } else {
                    expect(']');
                    return array;
                }
            }
        }

        private String string() {
            pos++; // opening quote
            StringBuilder out = new StringBuilder();
            while (true) {
                if (pos >= text.length()) {
                    throw error("unterminated string");
                }
                char c = text.charAt(pos++);
                if (c == '"') {
                    return out.toString();
                }
                if (c < 0x20) {
                    throw error("control character in a string");
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                if (pos >= text.length()) {
                    throw error("unterminated escape");
                }
                char e = text.charAt(pos++);
                switch (e) {
                    case '"' -> out.append('"');
                    case '\\' -> out.append('\\');
                    case '/' -> out.append('/');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    // A UTF-16 code unit; surrogate pairs arrive as two escapes and
                    // are joined by appending both units.
                    case 'u' -> out.append(hex4());
                    default -> {
                        pos--;
                        throw error("invalid escape \\" + e);
                    }
                }
            }
        }

        private char hex4() {
            if (pos + 4 > text.length()) {
                throw error("short \\u escape");
            }
            int value = 0;
            for (int i = 0; i < 4; i++) {
                int digit = Character.digit(text.charAt(pos), 16);
                if (digit < 0) {
                    throw error("invalid hex digit in a \\u escape");
                }
                value = value * 16 + digit;
                pos++;
            }
            return (char) value;
        }

        private Double number() {
            int start = pos;
            if (peek() == '-') {
                pos++;
            }
            if (peek() == '0') {
                pos++;
            } else if (isDigit(peek())) {
                digits();
            } else {
                throw error("invalid number");
            }
            if (peek() == '.') {
                pos++;
                if (!isDigit(peek())) {
                    throw error("invalid number");
                }
                digits();
            }
            if (peek() == 'e' || peek() == 'E') {
                pos++;
                if (peek() == '+' || peek() == '-') {
                    pos++;
                }
                if (!isDigit(peek())) {
                    throw error("invalid number");
                }
                digits();
            }
            return Double.valueOf(text.substring(start, pos));
        }

        private void digits() {
            while (isDigit(peek())) {
                pos++;
            }
        }

        private static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }

        private Object literal(String word, Object value) {
            if (!text.startsWith(word, pos)) {
                throw error("unexpected character '" + text.charAt(pos) + "'");
            }
            pos += word.length();
            return value;
        }

        private void expect(char c) {
            if (peek() != c) {
                throw error(pos >= text.length() ? "unexpected end of text" : "expected '" + c + "'");
            }
            pos++;
        }

        /** The next character, or NUL at the end of the text. */
        private char peek() {
            return pos < text.length() ? text.charAt(pos) : '\0';
        }

        private void skipSpace() {
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException(what + " at offset " + pos);
        }
    }
}
