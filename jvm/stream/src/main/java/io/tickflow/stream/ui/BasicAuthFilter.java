package io.tickflow.stream.ui;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Base64;

/**
 * HTTP basic authentication in front of the stream driver's UI and its metrics endpoints, in secured mode: one
 * user, whose password is read from a file (the stack's generated metrics password) when the UI starts. Spark
 * installs it through {@code spark.ui.filters} and passes {@code spark.<this class>.param.user} and {@code
 * .param.passwordFile} as its init parameters.
 */
public final class BasicAuthFilter implements Filter {
  private byte[] expected;

  @Override
  public void init(FilterConfig config) throws ServletException {
    String user = config.getInitParameter("user");
    String passwordFile = config.getInitParameter("passwordFile");
    if (user == null || passwordFile == null) {
      throw new ServletException("BasicAuthFilter needs its parameters user and passwordFile");
    }
    String password;
    try {
      password = Files.readString(Path.of(passwordFile), StandardCharsets.UTF_8).strip();
    } catch (IOException e) {
      throw new ServletException("BasicAuthFilter cannot read the password file " + passwordFile, e);
    }
    expected = header(user, password);
  }

  static byte[] header(String user, String password) {
    byte[] login = (user + ":" + password).getBytes(StandardCharsets.UTF_8);
    return ("Basic " + Base64.getEncoder().encodeToString(login)).getBytes(StandardCharsets.UTF_8);
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
    http.setHeader("WWW-Authenticate", "Basic realm=\"tickflow stream\"");
    http.sendError(HttpServletResponse.SC_UNAUTHORIZED, "the metrics login is needed (secured mode)");
  }
}
