package io.tickflow.stream.fill;

import static io.tickflow.stream.fill.Fixtures.FIELDS;
import static io.tickflow.stream.fill.Fixtures.N;
import static io.tickflow.stream.fill.Fixtures.ev;
import static io.tickflow.stream.fill.Fixtures.f;
import static io.tickflow.stream.fill.Fixtures.state;
import static io.tickflow.stream.fill.Fixtures.states;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.parquet.schema.MessageType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The state files through Hadoop's local FileSystem (tests/unit/stream/test_state.py). */
class StateFilesTest {
  static final long T0 = 1_795_793_405_000_000L;

  @TempDir Path tmp;

  private StateFiles files() throws IOException {
    // a file: URI, resolved by Hadoop like an hdfs: or s3a: one would be
    return new StateFiles(new org.apache.hadoop.fs.Path(tmp.toUri()), new Configuration(), FIELDS);
  }

  @Test
  void registersSurviveARoundTripThroughParquetTypes() throws IOException {
    Map<String, InstrumentState> written =
        states(
            "XNAS:AAPL", state("bid_size", 5, T0, 1, "trade_side", "buy", T0 + 1, 2, "bid_price", 189.25, T0, 3),
            "XNAS:MSFT", new InstrumentState(N),
            "XLON:VOD", state("trade_id", "ü-7", 0, 0, "trade_size", 1L << 53, T0, Long.MAX_VALUE),
            "XLON:BP", state("trade_price", null, T0 + 9, 4, "cancelled_trade_id", "t1", T0 + 9, 4));
    StateFiles files = files();
    files.write(3, 7, written); // a cleared register (a cancel's null, with its as-of) is not "never set"
    assertEquals(written, files.read(files.batchPath(3, 7)));
    // exactly STATE_SCHEMA's columns, in its order, and nothing beside the file (no .crc, no partial)
    MessageType schema;
    try (ParquetFileReader reader =
        ParquetFileReader.open(HadoopInputFile.fromPath(files.batchPath(3, 7), new Configuration()))) {
      schema = reader.getFileMetaData().getSchema();
      assertEquals(4, reader.getRecordCount());
    }
    assertEquals(StateFiles.schema(FIELDS), schema);
    assertEquals(1 + 3 * N, schema.getFieldCount());
    assertEquals("bid_price_as_of", schema.getFieldName(1 + N));
    assertEquals("cancelled_trade_id_offset", schema.getFieldName(3 * N));
    try (Stream<Path> listed = Files.list(tmp.resolve("p3"))) {
      assertEquals(Set.of("7.parquet"), listed.map(p -> p.getFileName().toString()).collect(Collectors.toSet()));
    }
  }

  @Test
  void aReplayedBatchReadsWhatItsFirstAttemptRead() throws IOException {
    StateFiles files = files();
    files.write(3, 7, states("A", state("last_price", 1.0, T0, 10)));
    files.write(3, 8, states("A", state("last_price", 2.0, T0 + 1, 11))); // batch 8 ran, its commit did not
    assertEquals(1.0, files.prior(3, 8, List.of("A")).get("A").value(f("last_price")));
    assertEquals(2.0, files.prior(3, 9, List.of("A")).get("A").value(f("last_price")));
    assertEquals(Map.of(), files.prior(4, 9, List.of("A"))); // another partition has its own instruments
    assertEquals(List.of(7L, 8L), files.batches(3));
  }

  @Test
  void theRegistersKeptInMemoryGiveWayToAFileReplacedBehindTheirBack() throws IOException {
    StateFiles files = files();
    files.write(3, 7, states("A", state("last_price", 1.0, T0, 10)));
    assertEquals(1.0, files.prior(3, 8, List.of("A")).get("A").value(f("last_price")), "kept in memory");
    files.prior(3, 8, List.of("A")).remove("A");
    assertEquals(1.0, files.prior(3, 8, List.of("A")).get("A").value(f("last_price")), "a copy each time");
    // another executor (or the Python tools) writes batch 7 of the partition again, with other registers
    files.write(4, 7, states("A", state("last_price", 9.0, T0, 10), "B", state("bid_size", 5, T0, 11)));
    Files.move(tmp.resolve("p4").resolve("7.parquet"), tmp.resolve("p3").resolve("7.parquet"),
        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    Map<String, InstrumentState> prior = files.prior(3, 8, List.of("A", "B"));
    assertEquals(9.0, prior.get("A").value(f("last_price")), "the file, not the registers this JVM wrote");
    assertEquals(Set.of("A", "B"), prior.keySet());
  }

  @Test
  void aBatchRunTwiceReadsTheSamePriorAndWritesTheSameFile() throws IOException {
    StateFiles files = files();
    files.write(0, 4, states("X", state("bid_price", 1.0, 5, 1), "Y", state("last_price", 3.0, 5, 2)));
    PartitionFill.Event[] batch = {ev("a", 10, 7, "bid_price", 2.0), ev("b", 12, 8, "trade_side", "sell")};
    byte[][] attempts = new byte[2][];
    for (int attempt = 0; attempt < 2; attempt++) {
      Map<String, InstrumentState> prior = files.prior(0, 5, List.of("X"));
      assertEquals(1.0, prior.get("X").value(f("bid_price"))); // not what the first attempt wrote
      PartitionFill.Result result = PartitionFill.fill(N, List.of(batch), prior);
      Map<String, InstrumentState> after = new java.util.HashMap<>(prior);
      after.putAll(result.states());
      files.write(0, 5, after);
      attempts[attempt] = Files.readAllBytes(tmp.resolve("p0/5.parquet"));
    }
    assertArrayEquals(attempts[0], attempts[1]);
    Map<String, InstrumentState> after = files.prior(0, 6, List.of());
    assertEquals(Set.of("X", "Y"), after.keySet()); // an instrument absent from the batch is carried over
    assertEquals(2.0, after.get("X").value(f("bid_price")));
    assertEquals("sell", after.get("X").value(f("trade_side")));
  }

  @Test
  void pruningKeepsTheNewestVersionsBeforeTheBatchAndNeverALaterOne() throws IOException {
    StateFiles files = files();
    for (long batch = 0; batch < 6; batch++) {
      files.write(0, batch, states("A", state("last_price", (double) batch, T0 + batch, batch)));
    }
    files.write(1, 2, states("B", state("last_price", 1.0, T0, 1)));
    files.prune(0, 4, 3); // a replay of batch 4 while 5 exists: keeps 2, 3 (before it), 4 itself, and 5
    assertEquals(List.of(2L, 3L, 4L, 5L), files.batches(0));
    files.prune(0, 5, 2);
    assertEquals(List.of(4L, 5L), files.batches(0));
    assertEquals(List.of(2L), files.batches(1), "another partition is left alone");
    assertEquals(4.0, files.prior(0, 5, List.of("A")).get("A").value(f("last_price")));
    assertThrows(IllegalArgumentException.class, () -> files.prune(0, 5, 1));
  }

  @Test
  void theInitialLayerSeedsInstrumentsAndLosesToNewerRegisters() throws IOException {
    StateFiles files = files();
    files.seed(
        states(
            "A", state("last_price", 1.0, T0, 10, "close_price", 9.0, T0, 3),
            "B", state("last_price", 5.0, T0, 1)));
    files.write(0, 0, states("A", state("last_price", 2.0, T0 + 1, 11)));
    Map<String, InstrumentState> prior = files.prior(0, 1, List.of("A"));
    assertEquals(2.0, prior.get("A").value(f("last_price")));
    assertEquals(9.0, prior.get("A").value(f("close_price")));
    assertEquals(Set.of("A"), prior.keySet()); // the initial layer only for the batch's instruments
    assertEquals(1.0, files.prior(0, 0, List.of("A")).get("A").value(f("last_price")));
  }

  /**
   * What Java writes, pyarrow and state.py read, and back (skipped without the repo's venv): the Python
   * readers of the state (state.FillState, snapshot.py) keep working on files of the JVM fill.
   */
  @Test
  void pythonReadsWhatJavaWritesAndBack() throws Exception {
    Path python = Path.of(System.getProperty("tickflow.python", "../../.venv/bin/python")).toAbsolutePath();
    assumeTrue(Files.isExecutable(python), "no Python venv at " + python);
    StateFiles files = files();
    files.write(0, 1, states(
        "A", state("bid_price", 1.5, T0, 3, "bid_size", 200, T0, 3, "trade_id", "t-9", T0 + 2, 4),
        "B", state("trade_side", "buy", T0 + 7, 11)));
    String script = String.join("\n",
        "import sys",
        "from tickflow.runtime.location import Location",
        "from tickflow.fill.state import FillState",
        "from tickflow.fill.semantics import InstrumentState",
        "T0 = " + T0,
        "def st(**r):",
        "    s = InstrumentState()",
        "    for n, (v, a, o) in r.items():",
        "        s.values[n], s.as_of[n], s.offsets[n] = v, a, o",
        "    return s",
        "files = FillState(Location.of(sys.argv[1]))",
        "got = files.current()",
        "want = {'A': st(bid_price=(1.5, T0, 3), bid_size=(200, T0, 3), trade_id=('t-9', T0 + 2, 4)),",
        "        'B': st(trade_side=('buy', T0 + 7, 11))}",
        "assert got == want, got",
        "files.write(1, 2, {'C': st(ask_price=(2.25, T0, 5), ask_size=(7, T0 + 1, 6), trade_side=('sell', T0, 5)),",
        "                   'D': InstrumentState()})",
        "");
    Process process =
        new ProcessBuilder(python.toString(), "-c", script, tmp.toString()).redirectErrorStream(true).start();
    assertTrue(process.waitFor(120, TimeUnit.SECONDS), "python did not finish");
    String output = new String(process.getInputStream().readAllBytes());
    assertEquals(0, process.exitValue(), output);
    assertEquals(
        states(
            "C", state("ask_price", 2.25, T0, 5, "ask_size", 7, T0 + 1, 6, "trade_side", "sell", T0, 5),
            "D", new InstrumentState(N)),
        files.prior(1, 3, List.of()));
  }
}
