"""TaskContext.get() inside tasks, and local properties carried to them, on both executors."""

from __future__ import annotations

from pystream import TaskContext


def _describe(_):
    ctx = TaskContext.get()
    return (ctx.partitionId(), ctx.stageId(), ctx.attemptNumber(), ctx.taskAttemptId(),
            ctx.getLocalProperty("job.owner"), ctx.cpus(), ctx.resources())


def test_tasks_know_their_partition_stage_and_attempt(sc):
    assert TaskContext.get() is None  # the driver's own code runs in no task
    first = sc.parallelize(range(6), 3).map(_describe).collect()
    assert [d[0] for d in first] == [0, 0, 1, 1, 2, 2]
    assert len({d[1] for d in first}) == 1 and {d[2] for d in first} == {0}
    assert len({d[3] for d in first}) == 3  # one attempt id per task
    assert all(d[4:] == (None, 1, {}) for d in first)
    second = sc.parallelize(range(2), 2).map(_describe).collect()
    assert second[0][1] != first[0][1]  # another stage
    # Through a shuffle: the reduce side's tasks see their own partitions.
    reduced = (sc.parallelize(range(20), 4).map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: a + b, 2)
               .mapPartitions(lambda it: [(TaskContext.get().partitionId(), sorted(it))]).collect())
    assert reduced == [(0, [(0, 90)]), (1, [(1, 100)])]
    assert TaskContext.get() is None


def test_local_properties_reach_the_tasks_of_the_thread_that_set_them(sc):
    import threading

    sc.setLocalProperty("job.owner", "ana")
    try:
        assert {d[4] for d in sc.parallelize(range(4), 2).map(_describe).collect()} == {"ana"}
        seen = []
        other = threading.Thread(target=lambda: seen.extend(sc.parallelize([0], 1).map(_describe).collect()))
        other.start()
        other.join()
        assert seen[0][4] is None  # another thread's jobs do not carry them
    finally:
        sc.setLocalProperty("job.owner", None)
    assert {d[4] for d in sc.parallelize(range(2), 2).map(_describe).collect()} == {None}


def test_streaming_jobs_carry_the_starting_threads_properties_and_their_batch(ssc):
    sc = ssc.sparkContext
    seen = []

    def record(rdd):
        seen.extend(rdd.map(lambda _: (TaskContext.get().getLocalProperty("job.owner"),
                                       TaskContext.get().getLocalProperty("spark.streaming.internal.batchTime"),
                                       TaskContext.get().getLocalProperty("spark.streaming.internal.outputOpId")))
                    .collect())

    from pystream.testing import advance

    ssc.queueStream([[1], [2]]).foreachRDD(record)
    sc.setLocalProperty("job.owner", "ana")
    try:
        ssc.start()
    finally:
        sc.setLocalProperty("job.owner", None)
    advance(ssc, 2)
    assert [s[0] for s in seen] == ["ana", "ana"] and [s[2] for s in seen] == ["0", "0"]
    assert int(seen[1][1]) - int(seen[0][1]) == 500  # each job knows its batch's time (ms)
