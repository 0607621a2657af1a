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
sc.stop()
