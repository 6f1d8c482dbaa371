package io.tickflow.stream.decode;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The writer schemas registered under one subject, read from the schema registry's Confluent API when a record
 * names an id the decoder was not given: a producer registers a new version while the stream runs, and its records
 * decode at once, without a restart. Every version of the subject is read in one go and kept for the JVM's life
 * (a registered schema never changes), so each id costs the registry one round of requests per executor.
 *
 * <p>An id the subject does not have gives null (the record is rejected as an unknown schema id). A producer
 * registers its schema before it writes with it, and a task's records were written before the task started, so a
 * read of the subject that began after the task started is proof enough: a task asks the registry only when no such
 * read was made yet ({@link #asOf}), not for every record with a made-up id. A registry that cannot be reached is
 * asked again every second for {@value #WAIT_S} s, the task waiting (a restart of the registry takes ~30 s), and
 * then fails the task: a valid record must not be dead-lettered because the registry was down.
 */
public final class RegistryWriters implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(RegistryWriters.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Map<String, String> KNOWN = new ConcurrentHashMap<>(); // url subject id -> schema
  private static final Map<String, Long> READ = new ConcurrentHashMap<>(); // url subject -> start of the last read
  private static volatile HttpClient client;
  static final int WAIT_S = 180;

  private final String url;
  private final String subject;
  private final int timeoutMs;

  /**
   * @param url the registry's Confluent-compatible API, e.g. {@code http://127.0.0.1:8081/apis/ccompat/v7}
   * @param subject the input topic's value subject, e.g. {@code md.events-value}
   */
  public RegistryWriters(String url, String subject, int timeoutMs) {
    this.url = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
    this.subject = subject;
    this.timeoutMs = timeoutMs;
  }

  /** The writer schema of an id, for a task that started at {@code taskStartNanos} ({@link System#nanoTime}). */
  public LongFunction<String> asOf(long taskStartNanos) {
    return id -> writer(id, taskStartNanos);
  }

  String writer(long id, long taskStartNanos) {
    String known = KNOWN.get(key(id));
    if (known != null) {
      return known;
    }
    String subjectKey = url + " " + subject;
    Long read = READ.get(subjectKey);
    if (read != null && read - taskStartNanos >= 0) {
      return null; // read after the task's records were written: the subject has no such id
    }
    long started = System.nanoTime();
    String versions = "/subjects/" + URLEncoder.encode(subject, StandardCharsets.UTF_8) + "/versions";
    JsonNode list = get(versions);
    if (list == null) {
      READ.merge(subjectKey, started, RegistryWriters::later);
      return null; // no such subject yet
    }
    for (JsonNode version : list) {
      JsonNode registered = get(versions + "/" + version.asInt());
      if (registered != null) {
        KNOWN.put(key(registered.get("id").asLong()), registered.get("schema").asText());
      }
    }
    READ.merge(subjectKey, started, RegistryWriters::later);
    return KNOWN.get(key(id));
  }

  private static Long later(Long a, Long b) {
    return a - b >= 0 ? a : b; // nanoTime values: compared by difference
  }

  private String key(long id) {
    return url + " " + subject + " " + id;
  }

  /** The JSON answer of {@code path}; null on 404. Waits up to {@link #WAIT_S} s for a registry that is down. */
  private JsonNode get(String path) {
    long deadline = System.nanoTime() + WAIT_S * 1_000_000_000L;
    while (true) {
      try {
        return getOnce(path);
      } catch (UncheckedIOException e) {
        if (System.nanoTime() - deadline > 0) {
          throw e;
        }
        LOG.warn("{}; asking again", e.getMessage());
        try {
          Thread.sleep(1000);
        } catch (InterruptedException interrupted) {
          Thread.currentThread().interrupt();
          throw e;
        }
      }
    }
  }

  private JsonNode getOnce(String path) {
    HttpRequest request =
        HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofMillis(timeoutMs)).GET().build();
    try {
      HttpResponse<String> response = http(timeoutMs).send(request, HttpResponse.BodyHandlers.ofString());
      if (response.statusCode() == 404) {
        return null;
      }
      if (response.statusCode() != 200) {
        throw new IllegalStateException(
            "the schema registry answered " + response.statusCode() + " to GET " + url + path + ": " + response.body());
      }
      return JSON.readTree(response.body());
    } catch (IOException e) {
      throw new UncheckedIOException("the schema registry at " + url + " did not answer GET " + path, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while reading the schema registry at " + url, e);
    }
  }

  private static HttpClient http(int timeoutMs) {
    if (client == null) {
      synchronized (RegistryWriters.class) {
        if (client == null) {
          client = HttpClient.newBuilder().connectTimeout(Duration.ofMillis(timeoutMs)).build();
        }
      }
    }
    return client;
  }
}
