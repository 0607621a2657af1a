"""The transactional file sink: batches committed atomically, re-runs never duplicate."""

import os

from pystream.output import FileSink
from pystream.testing import advance, manual_context


def test_file_sink_commits_each_batch_once(sc, tmp_path):
    sink = FileSink(str(tmp_path / "out"))
    ssc = manual_context(sc)
    ssc.queueStream([[("a", 1), ("b", 2)], [("c", 3)], []]).foreachRDD(sink)
    ssc.start()
    try:
        advance(ssc, 3)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(False)
    assert sink.committed_batches() == [500, 1000, 1500]
    assert sorted(map(tuple, sink.read())) == [("a", 1), ("b", 2), ("c", 3)]
    # A batch that runs again after a recovery writes nothing new.
    sink(500 / 1000.0, sc.parallelize([("a", 1), ("b", 2)], 2))
    assert sorted(map(tuple, sink.read())) == [("a", 1), ("b", 2), ("c", 3)]


def test_file_sink_ignores_and_replaces_uncommitted_batches(sc, tmp_path):
    sink = FileSink(str(tmp_path / "out"), format="text")
    crashed = tmp_path / "out" / "batch-2000"
    crashed.mkdir(parents=True)
    (crashed / "part-00000").write_text("half written\n")
    assert sink.read() == [] and sink.committed_batches() == []
    sink(2.0, sc.parallelize(["x", "y"], 2))
    assert sorted(sink.read()) == ["x", "y"]
    assert sorted(os.listdir(crashed)) == ["_SUCCESS", "part-00000", "part-00001"]
    assert [n for n in os.listdir(tmp_path / "out" / "_commits") if n.endswith(".tmp")] == []
