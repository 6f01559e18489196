// A small task pool for kan_forward's TaskRunner: tasks are claimed from one shared counter by
// the calling thread and by whichever workers are awake, and a call returns as soon as every
// task is done, without waiting for a worker that has not woken up yet. Why: ExecuTorch's
// parallel_for returns only after every pool thread has checked in, so after an idle spell
// (a cold run: the threads went to sleep) or on a loaded machine each layer waits for the
// scheduler to run a sleeping thread, twice per layer (measured: 1 head cold, 2 threads, on a
// busy 2-core VM, median 4-5 ms against 1.1 ms on one thread).
//
// Workers spin briefly after a job, then sleep on a condition variable; a call wakes sleepers
// but never waits for them. One call at a time: a concurrent caller runs its tasks inline.
#pragma once

#include <cstdint>

namespace lutham {

// Runs the tasks on the calling thread and at most `workers` pool threads. The process-wide
// pool grows to the largest count any call asked for; a call asking for fewer lets only that
// many join (each delegate may have its own thread count: LuthamBackend's num_threads).
void run_on_task_pool(uint32_t workers, int64_t n_tasks, void* job, void (*task)(void* job, int64_t index));

}  // namespace lutham
