// The Hive 2.3 metastore's thrift server on one address: `java -cp <classes>:<hive-site dir>:<pyspark jars>/*
// MetastoreLauncher <host> <port>`. tickflow.stack.metastore compiles it with javac at prepare (it also runs
// as a single-file source program, `java -cp ... MetastoreLauncher.java`, for a few seconds more per start).
//
// HiveMetaStore.main binds the wildcard address (startMetaStore passes no host to
// HiveAuthUtils.getServerSocket) and Hive 2.3 has no setting for it. This builds the server the way
// startMetaStore does in its non-SASL, non-SSL branch (read in the 2.3.10 bytecode: the same handler,
// processor, transport and protocol factories, worker threads and TCP keep-alive, all from hive-site.xml),
// only on a socket bound to <host>. Left out, because the stack's configuration turns them off:
// SASL/Kerberos and SSL (refused below rather than ignored), metrics (hive.metastore.metrics.enabled)
// and the threads startMetaStoreThreads starts after the server is up (the compactor initiator, workers
// and cleaner, the transaction housekeepers and ReplChangeManager's clearer all stay idle unless
// enabled; only its JvmPauseMonitor, which logs long GC pauses, would have run).
import java.lang.reflect.Method;
import org.apache.hadoop.hive.common.auth.HiveAuthUtils;
import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.hadoop.hive.conf.HiveConf.ConfVars;
import org.apache.hadoop.hive.metastore.HiveMetaStore;
import org.apache.hadoop.hive.metastore.HiveMetaStore.HMSHandler;
import org.apache.hadoop.hive.metastore.IHMSHandler;
import org.apache.hadoop.hive.metastore.TServerSocketKeepAlive;
import org.apache.hadoop.hive.metastore.TSetIpAddressProcessor;
import org.apache.hadoop.hive.metastore.TUGIBasedProcessor;
import org.apache.hadoop.hive.thrift.TUGIContainingTransport;
import org.apache.thrift.TProcessor;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.protocol.TCompactProtocol;
import org.apache.thrift.protocol.TProtocol;
import org.apache.thrift.protocol.TProtocolFactory;
import org.apache.thrift.server.ServerContext;
import org.apache.thrift.server.TServer;
import org.apache.thrift.server.TServerEventHandler;
import org.apache.thrift.server.TThreadPoolServer;
import org.apache.thrift.transport.TServerSocket;
import org.apache.thrift.transport.TTransport;
import org.apache.thrift.transport.TTransportFactory;

public class MetastoreLauncher {
  public static void main(String[] args) throws Throwable {
    if (args.length != 2) {
      throw new IllegalArgumentException("usage: MetastoreLauncher.java <host> <port>");
    }
    String host = args[0];
    int port = Integer.parseInt(args[1]);

    HiveConf.setLoadMetastoreConfig(true);  // as HiveMetaStore.main: hive-site.xml from the classpath
    HiveConf conf = new HiveConf(HMSHandler.class);
    if (conf.getBoolVar(ConfVars.METASTORE_USE_THRIFT_SASL) || conf.getBoolVar(ConfVars.HIVE_METASTORE_USE_SSL)) {
      throw new IllegalStateException("MetastoreLauncher serves plain thrift only: SASL and SSL need HiveMetaStore.main");
    }
    if (conf.getBoolVar(ConfVars.METASTORE_USE_THRIFT_FRAMED_TRANSPORT)) {
      throw new IllegalStateException("MetastoreLauncher serves unframed thrift only, as the stack's clients speak");
    }
    long maxMessageSize = conf.getLongVar(ConfVars.METASTORESERVERMAXMESSAGESIZE);
    int minWorkerThreads = conf.getIntVar(ConfVars.METASTORESERVERMINTHREADS);
    int maxWorkerThreads = conf.getIntVar(ConfVars.METASTORESERVERMAXTHREADS);
    boolean tcpKeepAlive = conf.getBoolVar(ConfVars.METASTORE_TCP_KEEP_ALIVE);

    TProtocolFactory protocolFactory;
    TProtocolFactory inputProtocolFactory;
    if (conf.getBoolVar(ConfVars.METASTORE_USE_THRIFT_COMPACT_PROTOCOL)) {
      protocolFactory = new TCompactProtocol.Factory();
      inputProtocolFactory = new TCompactProtocol.Factory(maxMessageSize, maxMessageSize);
    } else {
      protocolFactory = new TBinaryProtocol.Factory();
      inputProtocolFactory = new TBinaryProtocol.Factory(true, true, maxMessageSize, maxMessageSize);
    }

    IHMSHandler handler = HiveMetaStore.newRetryingHMSHandler(new HMSHandler("new db based metaserver", conf, false), conf);
    TProcessor processor;
    TTransportFactory transportFactory;
    if (conf.getBoolVar(ConfVars.METASTORE_EXECUTE_SET_UGI)) {  // Hive's default: clients tell who they are
      transportFactory = new TUGIContainingTransport.Factory();
      processor = new TUGIBasedProcessor<>(handler);
    } else {
      transportFactory = new TTransportFactory();
      processor = new TSetIpAddressProcessor<>(handler);
    }

    TServerSocket socket = HiveAuthUtils.getServerSocket(host, port);  // new InetSocketAddress(host, port)
    if (tcpKeepAlive) {
      socket = new TServerSocketKeepAlive(socket);
    }
    TServer server = new TThreadPoolServer(
        new TThreadPoolServer.Args(socket)
            .processor(processor)
            .transportFactory(transportFactory)
            .protocolFactory(protocolFactory)
            .inputProtocolFactory(inputProtocolFactory)
            .minWorkerThreads(minWorkerThreads)
            .maxWorkerThreads(maxWorkerThreads));
    server.setServerEventHandler(new RawStoreCleanup());
    System.out.printf(
        "metastore serving thrift on %s:%d (worker threads %d-%d, TCP keep-alive %b, set_ugi %b)%n",
        host, port, minWorkerThreads, maxWorkerThreads, tcpKeepAlive,
        conf.getBoolVar(ConfVars.METASTORE_EXECUTE_SET_UGI));
    server.serve();
  }

  /**
   * What startMetaStore's event handler does when a client disconnects: close the worker thread's
   * RawStore (its JDO persistence manager), unless the client's close() already did. Hive keeps that
   * code in a private method; it is looked up at start so that a Hive without it fails at once.
   */
  static final class RawStoreCleanup implements TServerEventHandler {
    private final Method cleanupRawStore;

    RawStoreCleanup() throws NoSuchMethodException {
      cleanupRawStore = HiveMetaStore.class.getDeclaredMethod("cleanupRawStore");
      cleanupRawStore.setAccessible(true);
    }

    @Override
    public void preServe() {}

    @Override
    public ServerContext createContext(TProtocol input, TProtocol output) {
      return null;
    }

    @Override
    public void deleteContext(ServerContext context, TProtocol input, TProtocol output) {
      try {
        cleanupRawStore.invoke(null);
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException("could not clean up the thread's RawStore", e);
      }
    }

    @Override
    public void processContext(ServerContext context, TTransport input, TTransport output) {}
  }
}
