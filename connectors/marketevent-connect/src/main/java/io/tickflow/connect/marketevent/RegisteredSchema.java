package io.tickflow.connect.marketevent;

import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.avro.Schema;
import org.apache.avro.SchemaParseException;
import org.apache.kafka.connect.errors.ConnectException;

/**
 * The latest schema registered under a subject, with the id that goes into the Confluent header.
 *
 * <p>Looked up once with the Confluent-compatible REST API ({@code GET {url}/subjects/{subject}/versions/latest},
 * which Apicurio serves under {@code /apis/ccompat/v7}). The plugin never registers anything: the schema of
 * {@code md.events} is the one tickflow registered from {@code schemas/}, so every failure here tells the
 * person to register it or to reach the registry, and the task does not start.
 */
public record RegisteredSchema(String subject, int id, int version, Schema schema) {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Fetches the latest version of {@code subject}; throws {@link ConnectException} with one sentence. */
    public static RegisteredSchema latest(String registryUrl, String subject, Duration timeout) {
        String base = registryUrl.strip();
        while (base.endsWith("/")) {
            base = base.substring(0, base.length() - 1);
        }
        String where = redactUserInfo(base);
        URI uri = URI.create(base + "/subjects/" + URLEncoder.encode(subject, StandardCharsets.UTF_8).replace("+", "%20")
                + "/versions/latest");
        HttpClient http = HttpClient.newBuilder().connectTimeout(timeout)
                .followRedirects(HttpClient.Redirect.NORMAL).build();
        HttpRequest request = HttpRequest.newBuilder(uri).timeout(timeout)
                .header("Accept", "application/vnd.schemaregistry.v1+json, application/json").GET().build();
        HttpResponse<byte[]> response;
        try {
            response = http.send(request, HttpResponse.BodyHandlers.ofByteArray());
        } catch (IOException e) {
            throw new ConnectException("the schema registry at " + where + " could not be reached (" + e
                    + "); start it and restart the task", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ConnectException("interrupted while looking up subject " + subject + " at " + where, e);
        }
        String body = new String(response.body(), StandardCharsets.UTF_8);
        if (response.statusCode() == 404) {
            throw new ConnectException("subject " + subject + " is not registered at " + where
                    + "; register tickflow's schemas first (tickflow schemas register) and restart the task");
        }
        if (response.statusCode() != 200) {
            throw new ConnectException("the schema registry at " + where + " answered HTTP " + response.statusCode()
                    + " for subject " + subject + ": " + snippet(body));
        }
        try {
            JsonNode json = JSON.readTree(body);
            JsonNode type = json.get("schemaType");
            if (type != null && type.isTextual() && !type.asText().equalsIgnoreCase("AVRO")) {
                throw new ConnectException("subject " + subject + " at " + where + " holds a " + type.asText()
                        + " schema, expected AVRO");
            }
            JsonNode id = json.get("id");
            JsonNode version = json.get("version");
            JsonNode schema = json.get("schema");
            if (id == null || !id.canConvertToInt() || schema == null || !schema.isTextual()) {
                throw new ConnectException("the schema registry at " + where + " answered subject " + subject
                        + " without an id and a schema: " + snippet(body));
            }
            return new RegisteredSchema(subject, id.asInt(), version == null ? 0 : version.asInt(),
                    new Schema.Parser().parse(schema.asText()));
        } catch (IOException | SchemaParseException e) {
            throw new ConnectException("subject " + subject + " at " + where + " did not answer with a valid Avro schema: "
                    + e.getMessage(), e);
        }
    }

    static String redactUserInfo(String url) {
        try {
            URI uri = URI.create(url);
            if (uri.getRawUserInfo() == null) {
                return url;
            }
            return new URI(uri.getScheme(), "***", uri.getHost(), uri.getPort(), uri.getPath(), null, null).toString();
        } catch (Exception e) {
            return "<unparsable url>";
        }
    }

    private static String snippet(String body) {
        String s = body.strip();
        return s.length() > 200 ? s.substring(0, 200) + "..." : s;
    }
}
