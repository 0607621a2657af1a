"""The SparkContext methods that read files into RDDs: text (compressed too), whole files, fixed-length binary
records, Hadoop SequenceFiles and pickle files. Paths are Hadoop's input paths (pystream.hadoop_files)."""

from __future__ import annotations

import os
from typing import Any

from pystream.errors import IllegalArgumentError
from pystream.hadoop_files import input_files, read_input, text_lines

__all__ = ["FileInputs"]


class FileInputs:
    """Mixed into SparkContext, which gives ``parallelize``, ``defaultMinPartitions`` and ``_check_alive``."""

    parallelize: Any
    defaultMinPartitions: int
    _check_alive: Any

    def textFile(self, name: str, minPartitions: int | None = None, use_unicode: bool = True):
        """Return an RDD of the lines of text files: ``name`` is Hadoop's input path, files, directories or
        globs separated by commas (pystream.hadoop_files). A file named .gz, .bz2 or .deflate is decompressed;
        bytes that are not UTF-8 read as U+FFFD, as Hadoop's Text reads them."""
        self._check_alive()
        lines = [line for path in input_files(name) for line in text_lines(path, use_unicode)]
        return self.parallelize(lines, minPartitions or self.defaultMinPartitions)

    def binaryRecords(self, path: str, recordLength: int):
        """Return an RDD of the fixed-length records (bytes of ``recordLength``) of a file, or of every non-hidden
        file of a directory; WrongRecordLengthError for a file whose size is not a multiple of it."""
        from pystream.streaming.sources.files import BinaryRecordReader

        self._check_alive()
        read = BinaryRecordReader(recordLength)
        return self.parallelize([r for name in input_files(path) for r in read(name)], self.defaultMinPartitions)

    def pickleFile(self, name: str, minPartitions: int | None = None):
        """Return an RDD of the elements ``RDD.saveAsPickleFile`` wrote (pystream's or pyspark's: both write
        Spark's layout, pystream.sequence_files) into ``name``, an input path as textFile's. Unpickling runs
        code the files name: read only files you trust, as with any pickle. A damaged file raises
        CorruptInputError."""
        from pystream.sequence_files import read_pickle_batches

        self._check_alive()
        elements: list[Any] = []
        for path in input_files(name):
            with open(path, "rb") as fh:
                elements.extend(read_pickle_batches(fh.read(), path))
        return self.parallelize(elements, minPartitions or self.defaultMinPartitions)

    def sequenceFile(self, path: str, keyClass: str | None = None, valueClass: str | None = None,
                     keyConverter: str | None = None, valueConverter: str | None = None,
                     minSplits: int | None = None, batchSize: int = 0):
        """Return an RDD of the (key, value) pairs of Hadoop SequenceFiles (``path`` an input path as
        textFile's), their Writables converted as pyspark converts them (pystream.sequence_files). The classes
        come from each file, as Hadoop's SequenceFileInputFormat takes them: ``keyClass`` and ``valueClass``
        are accepted and not needed. ``keyConverter`` / ``valueConverter`` name JVM classes, which pystream
        cannot run: IllegalArgumentError (convert the pairs with map() instead)."""
        from pystream.sequence_files import read_records

        self._check_alive()
        if keyConverter is not None or valueConverter is not None:
            raise IllegalArgumentError("keyConverter and valueConverter name JVM classes, which pystream has none "
                                       "of: convert the pairs with map() instead")
        pairs: list[Any] = []
        for name in input_files(path):
            with open(name, "rb") as fh:
                pairs.extend(read_records(fh.read(), name)[2])
        return self.parallelize(pairs, minSplits or self.defaultMinPartitions)

    def wholeTextFiles(self, path: str, minPartitions: int | None = None, use_unicode: bool = True):
        """Return an RDD of (file URI, whole text) per file of Hadoop's input path ``path`` (as textFile's),
        the URI as pyspark gives it (``file:/data/a.txt``); a file named .gz, .bz2 or .deflate is
        decompressed."""
        self._check_alive()
        files = []
        for name in input_files(path):
            data = read_input(name)
            files.append((_uri(name), data.decode("utf-8", "replace") if use_unicode else data))
        return self.parallelize(files, minPartitions or self.defaultMinPartitions)

    def binaryFiles(self, path: str, minPartitions: int | None = None):
        """Return an RDD of (file URI, bytes as stored, never decompressed) per file of Hadoop's input path
        ``path`` (as textFile's), the URI as pyspark gives it (``file:/data/a.bin``)."""
        self._check_alive()
        files = []
        for name in input_files(path):
            with open(name, "rb") as fh:
                files.append((_uri(name), fh.read()))
        return self.parallelize(files, minPartitions or self.defaultMinPartitions)

    def hadoopFile(self, path: str, inputFormatClass: str, keyClass: str | None = None,
                   valueClass: str | None = None, keyConverter: str | None = None,
                   valueConverter: str | None = None, conf: dict[str, str] | None = None, batchSize: int = 0):
        """Return an RDD of the (key, value) pairs an old-API Hadoop input format reads from ``path``: Text,
        KeyValueText and SequenceFile input formats (pystream.hadoop_formats); others UnsupportedFormatError."""
        from pystream.hadoop_formats import read_hadoop

        return read_hadoop(self, path, inputFormatClass, keyClass, valueClass, keyConverter, valueConverter, conf)

    def newAPIHadoopFile(self, path: str, inputFormatClass: str, keyClass: str | None = None,
                         valueClass: str | None = None, keyConverter: str | None = None,
                         valueConverter: str | None = None, conf: dict[str, str] | None = None,
                         batchSize: int = 0):
        """As hadoopFile, for the new API's input formats (``org.apache.hadoop.mapreduce.lib.input``)."""
        return self.hadoopFile(path, inputFormatClass, keyClass, valueClass, keyConverter, valueConverter, conf)

    def hadoopRDD(self, inputFormatClass: str, keyClass: str | None = None, valueClass: str | None = None,
                  keyConverter: str | None = None, valueConverter: str | None = None,
                  conf: dict[str, str] | None = None, batchSize: int = 0):
        """As hadoopFile, the path given by ``conf`` (``mapreduce.input.fileinputformat.inputdir``)."""
        from pystream.hadoop_formats import input_path_of

        return self.hadoopFile(input_path_of(conf), inputFormatClass, keyClass, valueClass, keyConverter,
                               valueConverter, conf)

    def newAPIHadoopRDD(self, inputFormatClass: str, keyClass: str | None = None, valueClass: str | None = None,
                        keyConverter: str | None = None, valueConverter: str | None = None,
                        conf: dict[str, str] | None = None, batchSize: int = 0):
        """As hadoopRDD, for the new API's input formats."""
        return self.hadoopRDD(inputFormatClass, keyClass, valueClass, keyConverter, valueConverter, conf)


def _uri(path: str) -> str:
    """A local file as Hadoop's Path names it: file:/absolute/path (every reader of input paths takes it)."""
    return "file:" + os.path.abspath(path)
