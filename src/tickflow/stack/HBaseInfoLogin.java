import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.Map;
import javax.servlet.Filter;
import javax.servlet.FilterChain;
import javax.servlet.FilterConfig;
import javax.servlet.ServletException;
import javax.servlet.ServletRequest;
import javax.servlet.ServletResponse;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.http.FilterContainer;
import org.apache.hadoop.hbase.http.FilterInitializer;

/**
 * Secured mode's metrics login in front of HBase's info server (its /prometheus): HTTP basic authentication for
 * one user, whose password is read from a file when the server starts. hbase-site.xml names this class in
 * hbase.http.filter.initializers, and the user and the file in tickflow.metrics.user and
 * tickflow.metrics.password.file. Compiled by the stack (src/tickflow/stack/hbase.py) into HBase's home.
 */
public class HBaseInfoLogin extends FilterInitializer {
  @Override
  public void initFilter(FilterContainer container, Configuration conf) {
    Map<String, String> login =
        Map.of(
            "user", conf.get("tickflow.metrics.user"),
            "passwordFile", conf.get("tickflow.metrics.password.file"));
    container.addGlobalFilter("tickflow-metrics-login", Login.class.getName(), login);
  }

  /** The filter itself. */
  public static class Login implements Filter {
    private byte[] expected;

    @Override
    public void init(FilterConfig config) throws ServletException {
      String password;
      try {
        password = Files.readString(Path.of(config.getInitParameter("passwordFile"))).strip();
      } catch (IOException e) {
        throw new ServletException("cannot read the metrics password file", e);
      }
      byte[] login = (config.getInitParameter("user") + ":" + password).getBytes(StandardCharsets.UTF_8);
      expected = ("Basic " + Base64.getEncoder().encodeToString(login)).getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
        throws IOException, ServletException {
      String given = ((HttpServletRequest) request).getHeader("Authorization");
      if (given != null && MessageDigest.isEqual(given.getBytes(StandardCharsets.UTF_8), expected)) {
        chain.doFilter(request, response);
        return;
      }
      HttpServletResponse http = (HttpServletResponse) response;
      http.setHeader("WWW-Authenticate", "Basic realm=\"tickflow hbase\"");
      http.sendError(HttpServletResponse.SC_UNAUTHORIZED, "the metrics login is needed (secured mode)");
    }

    @Override
    public void destroy() {}
  }
}
