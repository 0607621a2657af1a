"""How the directories beside this script were made: by Apache Spark 3.5.3 (pip install pyspark==3.5.3, with a
Java runtime), so that tests read real Spark output. Not run by the tests.

    python tests/data/spark-3.5.3/make.py
"""

import os
import shutil

from pyspark import SparkContext

HERE = os.path.dirname(os.path.abspath(__file__))

sc = SparkContext("local[2]", "make-test-data")
for codec in ("GzipCodec", "BZip2Codec", "DefaultCodec"):
    out = os.path.join(HERE, f"text-{codec}")
    shutil.rmtree(out, ignore_errors=True)
    lines = [f"spark line {i} \u00e9\u4e2d" for i in range(300)] + ["", "  padded  "]
    sc.parallelize(lines, 2).saveAsTextFile(out, f"org.apache.hadoop.io.compress.{codec}")
SEQUENCES = {
    "seq-text-int": [("a", 1), ("b", -2)],
    "seq-long-double": [(2 ** 40, 1.5), (-(2 ** 41), -0.0)],
    "seq-bool-bytes": [(True, b"\x00\x01"), (False, bytearray(b"zz"))],
    "seq-null-text": [(None, "n\u00e9")],
    "seq-text-map": [("m", {"d": 1.5, "n": None, "b": b"x", "t": True, "l": 2 ** 40, "s": "str", "nest": {"a": 1}})],
}
for name, pairs in SEQUENCES.items():
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    sc.parallelize(pairs, 1).saveAsSequenceFile(out)
for codec in ("DefaultCodec", "BZip2Codec"):  # Spark writes BLOCK compression (GzipCodec needs native Hadoop)
    out = os.path.join(HERE, f"seq-block-{codec}")
    shutil.rmtree(out, ignore_errors=True)
    sc.parallelize([(f"k{i}", i) for i in range(3000)], 2).saveAsSequenceFile(
        out, f"org.apache.hadoop.io.compress.{codec}")
out = os.path.join(HERE, "pickle")
shutil.rmtree(out, ignore_errors=True)
sc.parallelize([1, "two", (3, 4), {"five": 5.0}, None, b"raw"] * 5, 2).saveAsPickleFile(out, 2)
sc.stop()
