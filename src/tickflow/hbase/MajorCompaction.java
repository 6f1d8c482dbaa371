// Flush, then request a major compaction of, each table named on the command line; print one line per table.
// Run as a single-file source program (`java -cp <HBase jars and conf> MajorCompaction.java md:latest ...`) by
// tickflow.hbase.compaction: the Thrift 1 server's majorCompact runs a minor compaction in HBase 2.6.1
// (it calls Admin.compact), and neither Thrift 2 nor the REST server has a compaction call.
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.HBaseConfiguration;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.client.Admin;
import org.apache.hadoop.hbase.client.Connection;
import org.apache.hadoop.hbase.client.ConnectionFactory;

public class MajorCompaction {
  public static void main(String[] args) throws Exception {
    Configuration conf = HBaseConfiguration.create();  // hbase-site.xml from the classpath
    try (Connection connection = ConnectionFactory.createConnection(conf);
        Admin admin = connection.getAdmin()) {
      for (String name : args) {
        TableName table = TableName.valueOf(name);
        admin.flush(table);  // the memstore (and its delete markers) becomes store files the compaction sees
        admin.majorCompact(table);
        System.out.println("major compaction requested: " + name);
      }
    }
  }
}
