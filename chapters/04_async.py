# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Async/await for I/O-bound AI work
#
# An LLM call is mostly waiting. Your code sends a few kilobytes, then sits idle for
# half a second or half a minute while a GPU somewhere else does the work. Evaluate 500
# prompts one after another and your program spends almost all of its time asleep. Async
# code lets one Python process keep hundreds of those waits going at once, and this
# chapter is about doing that without flooding the provider, leaking connections or
# freezing the service.
#
# **What you'll learn**
#
# - concurrency, parallelism and asynchrony; the GIL; when to use threads, processes or
#   asyncio, and why async speeds up API calls but not embeddings computed on your CPU
#   (measured, not claimed);
# - coroutines, the event loop, `asyncio.run`, what `await` actually does, and top-level
#   `await` in notebooks;
# - running many calls: `gather` (with `return_exceptions=True` for batches),
#   `wait(FIRST_COMPLETED)`, `as_completed`, `TaskGroup` with `ExceptionGroup` and
#   `except*`;
# - semaphores, timeouts (`asyncio.timeout`, `wait_for`), cancellation and cleanup,
#   `shield`;
# - async context managers, async generators and iterators, and `asyncio.Queue` for
#   backpressure;
# - `httpx.AsyncClient` done right: pooling, limits, timeouts, one client, closed;
# - the pitfalls that bite in production, each shown happening;
# - a worked example: evaluating many prompts concurrently, with a limit.
#
# Every request here is real HTTP to the course's local LLM server, with latency
# injected in tens of milliseconds so the whole chapter runs in a few seconds. The
# exercises have you build a rate-limited async client and rescue a slow script:
# [the chapter 4 exercises](../exercises/04_async).

# %% [markdown]
# ## The local server
#
# Start the server and one `httpx.AsyncClient` for the whole chapter (why one, and why
# it must be closed, comes later). The `X-Mock-Scenario` header sets how the server
# behaves for one request: `latency:50ms` answers after 50 ms, `error:503` fails.
# `ask()` sends one chat completion and returns the answer's text.

# %%
import asyncio
import time
from contextlib import contextmanager

import httpx

from course.llm_server import LLMServer

server = LLMServer()
server.start()
client = httpx.AsyncClient(
    base_url=server.base_url,
    headers={"Authorization": f"Bearer {server.api_key}"},
    timeout=5.0,
)


async def ask(
    prompt: str, scenario: str = "latency:50ms", request_id: str | None = None
) -> str:
    headers = {"X-Mock-Scenario": scenario} | (
        {"X-Request-ID": request_id} if request_id else {}
    )
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": prompt}]}
    response = await client.post("/v1/chat/completions", json=body, headers=headers)
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


@contextmanager
def timed(label: str):
    start = time.perf_counter()
    yield  # no try/finally (chapter 3): a block that raises needs no timing line here
    print(f"{label:34} {time.perf_counter() - start:.2f}s")


print(await ask("Say hello", scenario="ok"))

# %% [markdown]
# ## Concurrency, parallelism, asynchrony
#
# Three words that get used as synonyms, and are not:
#
# - **Concurrency** is about *structure*: several tasks are in progress over the same
#   period, their steps interleaved. A waiter serving ten tables is concurrent.
# - **Parallelism** is about *execution*: several things run at the same instant, on
#   different CPU cores. Ten waiters are parallel.
# - **Asynchrony** is a way to get concurrency: start an operation, do not wait for it,
#   and be told when it has finished. The waiter takes an order to the kitchen and serves
#   another table instead of standing at the pass.
#
# `asyncio` gives you concurrency through asynchrony on **one thread**: while one request
# waits for the network, the thread runs another. There is no parallelism at all. That
# is enough for API calls, because the waiting happens elsewhere: on the provider's
# GPUs and in the network.
#
# ### The GIL
#
# CPython's **global interpreter lock** lets only one thread at a time execute Python
# bytecode. Threads still help with I/O, because a thread releases the GIL while it
# blocks on a socket or a file (and some C extensions, such as NumPy and `hashlib`,
# release it during long computations). But two threads running pure-Python code take
# turns; they never run it in parallel. (Python 3.13 has an experimental free-threaded
# build without the GIL; the libraries you depend on have to support it first.)
#
# So there are three tools, for different jobs:
#
# - **asyncio**: many tasks on one thread, switching at each `await`. For thousands of
#   concurrent waits: API calls, streams, websockets. It needs async libraries all the
#   way down, and one blocking call freezes every task.
# - **Threads**: OS threads sharing one GIL. For blocking libraries you cannot replace
#   (a sync SDK, file I/O). No speed-up for Python computation, and shared state needs
#   locks.
# - **Processes**: separate interpreters, one GIL each. For CPU-bound Python: local
#   embeddings, tokenising, parsing. They cost start-up time, and arguments and results
#   are pickled from one process to the other.
#
# ### Measured: API calls against CPU work
#
# Eight API calls, each with 50 ms of server-side latency, first one after another,
# then all at once with `asyncio.gather` (explained below):

# %%
prompts = [f"Summarise support ticket #{i}" for i in range(8)]

with timed("8 API calls, one after another"):
    for prompt in prompts:
        await ask(prompt)

with timed("8 API calls, concurrently"):
    await asyncio.gather(*(ask(prompt) for prompt in prompts))

# %% [markdown]
# About eight waits in a row against about one: the concurrent version overlaps the
# waiting. Now CPU work. `embed_locally` stands in for an embedding model running on your
# CPU: it computes a 20,000-dimension vector in pure Python (it is the server's own
# deterministic embedding function, imported from a module; the reason that matters
# comes below). The process pool is started and warmed up before the clock starts, as a
# service would do once at start-up.

# %%
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from course.llm_server.answers import embedding

embed_locally = partial(embedding, "mini-embed", dimensions=20_000)


async def embed_async(text: str) -> list[float]:
    return embed_locally(text)  # async in name only: nothing in here awaits


texts = [f"chunk {i} of the product manual" for i in range(8)]

with timed("8 embeddings, one after another"):
    vectors = [embed_locally(text) for text in texts]

with timed("8 embeddings, asyncio.gather"):
    vectors = await asyncio.gather(*(embed_async(text) for text in texts))

with timed("8 embeddings, 8 threads"):
    vectors = await asyncio.gather(
        *(asyncio.to_thread(embed_locally, text) for text in texts)
    )

loop = asyncio.get_running_loop()
with ProcessPoolExecutor(max_workers=2) as pool:
    await asyncio.gather(
        *(loop.run_in_executor(pool, embed_locally, "warm-up") for _ in range(2))
    )
    with timed("8 embeddings, 2 processes"):
        vectors = await asyncio.gather(
            *(loop.run_in_executor(pool, embed_locally, text) for text in texts)
        )

# %% [markdown]
# `gather` changes nothing: `embed_async` never awaits anything, so each coroutine runs
# from start to end before the next one starts. Threads do no better, because the GIL
# lets one of them compute at a time. Only the process pool *can* compute in parallel:
# each worker is a separate interpreter with its own GIL. Whether it wins depends on
# free cores. With two idle cores, the two workers split the eight texts and the time
# drops towards half; on a busy machine, or in a one-core container, it gains nothing
# and still pays for pickling 160,000 floats back to the parent. Compare its line with
# the sequential one on your machine.
#
# The rule for AI services: **async for waiting, processes (or a GPU, or a native
# library that releases the GIL) for computing.** Two practical notes on the pool: the
# function you send to it must be importable from a module, because on macOS, on
# Windows, and on Linux from Python 3.14, workers start as fresh interpreters that
# cannot see functions defined in a notebook; and start the pool once, not per request.

# %% [markdown]
# ## Coroutines and the event loop
#
# An `async def` function is a **coroutine function**. Calling it does not run it: it
# returns a **coroutine object**, a paused computation. Nothing is sent until something
# awaits it:

# %% tags=["nbval-check-output"]
server.clear_log()
pending = ask("What is our refund policy?")
print(type(pending).__name__, "| requests the server has seen:", len(server.log))
answer = await pending
print(type(answer).__name__, "| requests the server has seen:", len(server.log))

# %% [markdown]
# The **event loop** is the scheduler that runs coroutines. It keeps a queue of tasks
# that are ready to run and a list of things being waited for (sockets, timers). It takes
# a ready task and runs it until the task hits an `await` on something that is not ready
# yet, say a response that has not arrived. The task is suspended there, and the loop
# runs the next ready task. When the socket has data, the loop marks the waiting task
# ready again, and resumes it exactly where it stopped.
#
# ```{graphviz}
# ---
# alt: >-
#   The event loop takes a task from the ready queue and runs it until it awaits
#   something that is not ready; the task is then suspended until its socket has data or
#   its timer fires, when it goes back to the ready queue; a task that returns is
#   finished.
# caption: >-
#   One event loop, many tasks: a task runs until an `await` that must wait.
# ---
# digraph event_loop {
#   rankdir=LR; nodesep=0.5; ranksep=0.6; fontname="sans-serif";
#   node [shape=box, style="rounded,filled", fillcolor="#dbe9f6", color="#1f4e79",
#         fontcolor="#10263d", fontname="sans-serif", fontsize=11, margin="0.15,0.08"];
#   edge [color="#44546a", fontcolor="#33414f", fontname="sans-serif", fontsize=10];
#   ready [label="ready queue\ntask A, task B, ..."];
#   run [label="the event loop runs\none task at a time", fillcolor="#fde9b5",
#        color="#8a6100"];
#   waiting [label="suspended tasks\nA: awaits the server's answer\nB: awaits asyncio.sleep(0.5)"];
#   done [label="finished task\n(its result is stored)", fillcolor="#e4f1e1",
#         color="#2e6b30"];
#   ready -> run [label="take the next\nready task"];
#   run -> waiting [label="await on something\nnot ready yet"];
#   waiting -> ready [label="the socket has data or\nthe timer fired: resume\nexactly where it stopped"];
#   run -> done [label="return"];
# }
# ```
#
# So **`await x` means: suspend this coroutine until `x` is done, and let the loop run
# other work meanwhile.** Two consequences:
#
# - Switching happens only at `await`. Code between two `await`s runs without
#   interruption, which is why async code rarely needs locks, and why a slow step
#   without an `await` in it freezes every other task (the pitfalls section shows it).
# - Awaiting a coroutine directly runs it inside the current task, like a function call.
#   Only a **task** (`asyncio.create_task`) runs independently, alongside its creator.
#
# Two "requests", each printing when it sends and when its answer arrives:

# %%
async def step(name: str, ms: int) -> None:
    print(f"{name}: request sent")
    await ask(name, f"latency:{ms}ms")
    print(f"{name}: answer received")


with timed("awaited one after the other"):
    await step("A", 60)
    await step("B", 30)

# %%
with timed("run as two tasks"):
    task_a = asyncio.create_task(step("A", 60))
    task_b = asyncio.create_task(step("B", 30))
    await task_a
    await task_b

# %% [markdown]
# Awaited directly, B starts only after A is done. As tasks, both are sent before
# either answer arrives, B's shorter wait ends first, and the total is about the longer
# of the two waits instead of their sum.

# %% [markdown]
# ### `asyncio.run` in scripts, top-level `await` in notebooks
#
# A script or a service has no event loop until you start one. `asyncio.run(main())`
# creates a loop, runs `main()` to the end, cancels any tasks still running, closes the
# loop and returns `main()`'s result. Call it once, at the program's entry point:

# %% tags=["nbval-check-output"]
import subprocess
import sys

script = """
import asyncio

async def call_model(i: int) -> int:
    await asyncio.sleep(0.05)  # stands in for an API call
    return i

async def main() -> None:
    results = await asyncio.gather(*(call_model(i) for i in range(10)))
    print(f"{len(results)} results")

if __name__ == "__main__":
    asyncio.run(main())
"""
print(
    subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    ).stdout
)

# %% [markdown]
# Jupyter is different: the kernel already runs an event loop, and IPython runs a cell
# that contains `await` on that loop. That is why this chapter writes `await ask(...)`
# at the top level of a cell, which would be a syntax error in a `.py` module. And it is
# why `asyncio.run` fails in a notebook: it refuses to start a second loop inside a
# running one.

# %% tags=["nbval-check-output"]
async def main() -> str:
    return await ask("Hello")


coroutine = main()
try:
    asyncio.run(coroutine)
except RuntimeError as exc:
    print("RuntimeError:", exc)
    coroutine.close()  # it never ran; closing it avoids a "never awaited" warning

# %% [markdown]
# In a notebook, `await main()`. In a script, `asyncio.run(main())`. Do not paper over
# the error with `nest_asyncio`, which patches the loop to allow re-entry and changes
# how every task is scheduled. And call `asyncio.run` once per program, not once per
# request: each call creates a new loop and closes it, and an `httpx.AsyncClient` made on
# the first loop fails with "Event loop is closed" on the second.
#
# ### `get_running_loop()`, and the legacy `get_event_loop()`
#
# Some APIs need the loop object itself: `loop.run_in_executor(...)` above, or
# `loop.time()`. Inside a coroutine, get it with `asyncio.get_running_loop()`. You will
# still meet the older spelling in code and answers on the web:

# %% tags=["nbval-check-output"]
async def legacy() -> bool:
    loop = asyncio.get_event_loop()  # legacy: use asyncio.get_running_loop()
    return loop is asyncio.get_running_loop()


def outside_any_loop() -> str:
    try:
        asyncio.get_running_loop()
    except RuntimeError as exc:
        return f"RuntimeError: {exc}"
    return "found a loop"


print("inside a coroutine, same loop:", await legacy())
print("in a thread with no loop:", await asyncio.to_thread(outside_any_loop))

# %% [markdown]
# Inside a coroutine both return the running loop. The difference is outside one:
# there `get_event_loop()` returned a loop that was *not running*, and in the main thread
# silently created one if there was none. Code that ran at import time, or in the wrong
# thread, got a loop nobody would ever run, and the bug surfaced much later as a hang or
# a "Future attached to a different loop" error. Python deprecated that (with warnings
# from 3.10 on), and since 3.14 `get_event_loop()` raises instead of creating a loop.
# `get_running_loop()` never creates anything: outside a running loop it raises at once,
# which is where the mistake is.

# %% [markdown]
# ## Running many calls at once
#
# Four tools, for four shapes of work.
#
# ### `gather`: all results, in order
#
# `asyncio.gather(*awaitables)` wraps each coroutine in a task, waits for all of them and
# returns the results **in the order you passed them**, whatever order they finished in:

# %% tags=["nbval-check-output"]
async def labelled(label: str, ms: int) -> str:
    await ask(label, f"latency:{ms}ms")
    return label


print(
    await asyncio.gather(
        labelled("slow", 80), labelled("fast", 10), labelled("medium", 40)
    )
)

# %% [markdown]
# When one of them fails, `gather` raises that first exception to you, and **does not
# cancel the others**: they keep running, and their results are thrown away. Three
# requests, the second of which fails at once:

# %% tags=["nbval-check-output"]
batch = {"q1": "latency:60ms", "q2": "error:503", "q3": "latency:90ms"}
server.clear_log()
try:
    await asyncio.gather(*(ask(q, scenario) for q, scenario in batch.items()))
except httpx.HTTPStatusError as exc:
    print(
        "gather raised",
        exc.response.status_code,
        "| answers sent so far:",
        len(server.log),
    )
# wait, without blocking the loop, for all three
await asyncio.to_thread(server.wait_for_log, 3)
print("later, answers sent:", len(server.log))

# %% [markdown]
# For a batch that is wrong: one bad prompt loses the answers to all the others. Pass
# **`return_exceptions=True`** and every awaitable gets a slot in the result list, either
# its value or its exception, so you keep the successes and decide about each failure:

# %% tags=["nbval-check-output"]
outcomes = await asyncio.gather(
    *(ask(q, scenario) for q, scenario in batch.items()), return_exceptions=True
)
for q, outcome in zip(batch, outcomes, strict=True):
    print(
        q,
        f"failed: {type(outcome).__name__}"
        if isinstance(outcome, Exception)
        else "answered",
    )

# %% [markdown]
# ### `wait(FIRST_COMPLETED)`: react to the first one
#
# `asyncio.wait(tasks, return_when=FIRST_COMPLETED)` returns as soon as one task is
# done, with two sets: `done` and `pending`. It never raises the tasks' exceptions (call
# `task.result()` on the done ones) and never cancels anything, so the pending tasks are
# yours to handle. The typical use: ask several providers (or the same one twice) and
# take the first answer. It takes tasks, not bare coroutines.

# %% tags=["nbval-check-output"]
tasks = {
    asyncio.create_task(labelled(f"provider-{ms}ms", ms), name=f"{ms}ms")
    for ms in (90, 20, 60)
}
done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
print("first answer from:", [task.result() for task in done])
for task in pending:
    task.cancel()
# wait until the cancellations are done
await asyncio.gather(*pending, return_exceptions=True)
print(
    "losers cancelled:", sorted(task.get_name() for task in pending if task.cancelled())
)

# %% [markdown]
# `wait` also takes `timeout=` (it returns what finished by then, cancelling nothing)
# and `return_when=FIRST_EXCEPTION`. Chapter 6 builds hedged requests on it.
#
# ### `as_completed`: handle results as they arrive
#
# `asyncio.as_completed` yields awaitables in the order the work **finishes**, so you can
# show progress, write each result to disk or start the next step without waiting for
# the slowest call. Each yielded object is a new awaitable, not your task, so let the
# coroutine return something that identifies it. (From Python 3.13, `async for` over
# `as_completed` yields the original tasks.)

# %% tags=["nbval-check-output"]
evals = [labelled("case-1", 90), labelled("case-2", 10), labelled("case-3", 50)]
for finished, next_result in enumerate(asyncio.as_completed(evals), start=1):
    print(f"{finished}/3 done: {await next_result}")

# %% [markdown]
# ### `TaskGroup`: all or nothing, with nothing left behind
#
# `asyncio.TaskGroup` (Python 3.11) is **structured concurrency**: tasks created in an
# `async with` block cannot outlive it. The block waits for all of them. If one fails,
# the group cancels the others, waits for them to finish cancelling, and raises an
# **`ExceptionGroup`** holding every failure. That fits work whose parts only make sense
# together: to answer a chat message you need the retrieved documents *and* the user's
# profile *and* the history; if one fails, the others are wasted.
#
# `except*` (also 3.11) handles an exception group by type: each clause gets the
# sub-group that matches it, and several clauses can run for one group.
#
# The model asked for three tool calls, to be run concurrently. One is fine; one lacks a
# required argument; one is JSON cut short. The two broken calls fail at once, before
# they send anything; the good one is already waiting for its answer:

# %% tags=["nbval-check-output"]
import json


async def run_tool(raw_call: str) -> str:
    call = json.loads(raw_call)  # ValueError: the JSON is broken
    query = call["arguments"]["query"]  # KeyError: an argument is missing
    try:
        return await ask(f"search: {query}", "latency:200ms")
    except asyncio.CancelledError:
        print(f"search for {query!r}: cancelled")
        raise


tool_calls = [
    '{"name": "search", "arguments": {"query": "refund policy"}}',
    '{"name": "search", "arguments": {"q": "opening hours"}}',
    '{"name": "search", "arguments": {"query": "shipp',
]
try:
    async with asyncio.TaskGroup() as group:
        tool_tasks = [group.create_task(run_tool(raw)) for raw in tool_calls]
except* KeyError as errors:
    print("missing arguments:", [str(e) for e in errors.exceptions])
except* ValueError as errors:
    print("broken JSON:", [type(e).__name__ for e in errors.exceptions])
print(
    "states:",
    [
        "cancelled" if t.cancelled() else type(t.exception()).__name__
        for t in tool_tasks
    ],
)

# %% [markdown]
# The group cancelled the search still in flight (an answer nobody could use), waited for
# it, and raised one `ExceptionGroup` with both failures; each `except*` clause handled
# its own. A single ordinary exception could have carried only one of the failures, and
# `gather` would have raised the first and left the search running.
#
# | you need | use |
# |---|---|
# | every result, in order; one failure may fail the lot | `gather` |
# | every result, failures kept as values (a batch) | `gather(..., return_exceptions=True)` |
# | the first to finish (hedging, racing providers), or a timeout without cancelling | `wait` |
# | results in completion order (progress, streaming results out) | `as_completed` |
# | all parts or none, siblings cancelled on failure, no task outliving the block | `TaskGroup` |

# %% [markdown]
# ## Bounding concurrency with a semaphore
#
# `gather` over 5,000 prompts starts 5,000 requests at once. The provider answers most
# of them with 429s, your connection pool queues the rest, and memory fills with pending
# responses. An **`asyncio.Semaphore(n)`** holds `n` permits: `async with semaphore`
# takes one, or waits until one is free. At most `n` requests are then in flight.
#
# The server records how many requests were in progress when each one arrived, so the
# cap can be read from its side:

# %%
async def ask_limited(semaphore: asyncio.Semaphore, prompt: str) -> str:
    async with semaphore:
        return await ask(prompt, "latency:40ms")


for limit in (16, 4):
    semaphore = asyncio.Semaphore(limit)
    server.clear_log()
    with timed(f"16 requests, Semaphore({limit})"):
        await asyncio.gather(*(ask_limited(semaphore, f"q{i}") for i in range(16)))
    print(
        "   most in flight on the server:",
        max(record.in_flight for record in server.log),
    )

# %% [markdown]
# With sixteen permits (no real limit) nearly all the requests were in flight at once.
# With four, the server never saw more than four, and the batch took about four rounds
# of latency instead of one. A semaphore caps *concurrency*, not *rate*: if responses
# get faster, more requests per second go out. A provider's "requests per minute" quota
# needs a token bucket (chapter 6, and this chapter's exercise); many clients use both.

# %% [markdown]
# ## Timeouts
#
# An API call without a deadline can hang a worker forever. Two ways to set one:
#
# - **`async with asyncio.timeout(seconds):`** (3.11) puts a deadline on a whole block,
#   however many awaits it contains: "retrieve, then generate, within 2 s".
# - **`await asyncio.wait_for(awaitable, seconds)`** puts it on one awaitable. Older,
#   and still fine for a single call.
#
# When the deadline passes, both cancel the work in progress and raise `TimeoutError`.

# %%
start = time.perf_counter()
try:
    async with asyncio.timeout(0.1):
        documents = await ask("retrieve", "latency:20ms")
        answer = await ask("generate", "latency:500ms")
except TimeoutError:
    print(f"asyncio.timeout: gave up after {time.perf_counter() - start:.2f}s")

start = time.perf_counter()
try:
    await asyncio.wait_for(ask("generate", "latency:500ms"), timeout=0.1)
except TimeoutError:
    print(f"asyncio.wait_for: gave up after {time.perf_counter() - start:.2f}s")

# %% [markdown]
# `httpx` has timeouts of its own (see below), but they limit each network operation
# (connect, each read), not the whole call: a server that sends one byte every few
# seconds never trips a read timeout. For "this call, retries included, gets 10 s", use
# `asyncio.timeout`.

# %% [markdown]
# ## Cancellation and cleanup
#
# `task.cancel()` asks a task to stop. The next time the task is suspended at an `await`,
# that `await` raises **`asyncio.CancelledError`** inside it. The exception unwinds the
# coroutine like any other, so `finally` blocks and `async with` exits run: the place to
# release a connection, return a permit, or record that an evaluation was abandoned.
# Timeouts and `TaskGroup` cancel work in exactly this way.

# %% tags=["nbval-check-output"]
async def eval_job(name: str) -> str:
    print(f"{name}: started")
    try:
        return await ask(name, "latency:500ms")
    except asyncio.CancelledError:
        print(f"{name}: cancelled; recording it as abandoned")
        raise  # always re-raise
    finally:
        print(f"{name}: finally ran; permit released")


job = asyncio.create_task(eval_job("job-7"))
await asyncio.sleep(0.05)
job.cancel()
try:
    await job
except asyncio.CancelledError:
    print("caller: job.cancelled() =", job.cancelled())

# %% [markdown]
# The request was abandoned mid-wait, the `except` block and then the `finally` block
# ran, and the caller sees a cancelled task. That is the whole protocol.
#
# First rule: **re-raise `CancelledError`.** It derives from `BaseException` (since
# 3.8), so `except Exception` does not catch it, as intended. Swallowing it breaks
# everything built on cancellation, timeouts first:

# %%
async def swallows_cancellation() -> str:
    try:
        await asyncio.sleep(0.3)
    except asyncio.CancelledError:
        print("cancelled, carrying on")  # wrong: no raise
    return "finished anyway"


start = time.perf_counter()
async with asyncio.timeout(0.05):
    result = await swallows_cancellation()
print(
    f"{result!r} after {time.perf_counter() - start:.2f}s, no TimeoutError from a "
    "0.05 s timeout"
)

# %% [markdown]
# The timeout fired, but the coroutine caught the cancellation and returned as if it
# had finished. No `TimeoutError` reached the caller, which cannot tell a cut-short call
# from a real answer. Two more rules:
#
# - **Cancellation is a request.** The task stops at its next `await`, and its cleanup
#   may await too. After `cancel()`, await the task (or `gather(..., return_exceptions=True)`
#   several) so that the cleanup has finished before you, say, close the HTTP client.
# - **Keep cleanup short.** Code in `finally` can be cancelled again at its own awaits.
#
# ### `shield`: work that must finish
#
# Some work must complete even if the request that started it is cancelled: writing the
# usage record you bill from, saving an evaluation result that cost money. `await
# asyncio.shield(task)` protects the inner task from the caller's cancellation. The
# caller is still cancelled (or times out) at once; the inner task keeps running. Keep a
# reference to it (see the pitfalls below). Here the request is cancelled while its
# usage record is being written:

# %% tags=["nbval-check-output"]
saved: list[str] = []
background: set[asyncio.Task] = set()


writing = asyncio.Event()


async def record_usage(prompt: str) -> None:
    writing.set()
    await asyncio.sleep(0.05)  # stands in for a database write
    saved.append(prompt)


async def handle_request(prompt: str) -> str:
    answer = await ask(prompt, "latency:10ms")
    write = asyncio.create_task(record_usage(prompt))
    background.add(write)
    write.add_done_callback(background.discard)
    await asyncio.shield(write)
    return answer


request = asyncio.create_task(handle_request("billable question"))
await writing.wait()  # the answer is in and the usage write has started...
request.cancel()  # ...when the user closes the browser tab
try:
    await request
except asyncio.CancelledError:
    print("request cancelled; usage saved so far:", saved)
# what a graceful shutdown does: let background work finish
await asyncio.gather(*background)
print("after the background work finished:", saved)

# %% [markdown]
# `shield` protects against cancellation from the caller, nothing more: when the loop
# shuts down (`asyncio.run` ending, the service stopping), the shielded task is
# cancelled like any other. Work that must survive a restart belongs in a durable queue.

# %% [markdown]
# ## Async context managers and async iterators
#
# `async with` is `with` for setup and cleanup that must await: opening a client and
# closing its connections, acquiring a permit. It calls `await obj.__aenter__()` and
# `await obj.__aexit__(...)`. Chapter 3 built one with `@asynccontextmanager`; here is
# the class form, a session that checks the server is up before handing out the client
# and always closes it:

# %% tags=["nbval-check-output"]
class ProviderSession:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def __aenter__(self) -> httpx.AsyncClient:
        # fail early, before any real work
        (await self.client.get("/health")).raise_for_status()
        return self.client

    async def __aexit__(self, exc_type, exc, traceback) -> bool:
        await self.client.aclose()
        print(
            "session closed; the block raised:", exc_type.__name__ if exc_type else None
        )
        return False  # do not swallow the exception


async with ProviderSession(server.base_url, server.api_key) as session:
    models = (await session.get("/v1/models")).json()
    print("models:", [model["id"] for model in models["data"]][:3])

# %% [markdown]
# An **async generator** is an `async def` with `yield`: it can await between values, and
# you consume it with `async for`. It suits results that arrive over time: pages of an
# API, tokens of a stream (chapter 7), or answers to a long list of prompts produced a
# batch at a time, so the consumer starts on the first answers while later ones are
# still being fetched, and memory holds one batch:

# %%
from collections.abc import AsyncIterator


async def answers(
    prompts: list[str], batch_size: int = 4
) -> AsyncIterator[tuple[str, str]]:
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        replies = await asyncio.gather(
            *(ask(prompt, "latency:20ms") for prompt in batch)
        )
        for prompt, reply in zip(batch, replies, strict=True):
            yield prompt, reply


async for prompt, reply in answers(prompts[:6]):
    print(f"{prompt}: {len(reply.split())} words")

# %% [markdown]
# Behind `async for` is the **async iterator protocol**: `__aiter__()` returns the
# iterator, and `await iterator.__anext__()` gives the next value or raises
# `StopAsyncIteration`. An async generator implements it for you; `anext()` calls it by
# hand, and an async comprehension collects the values:

# %% tags=["nbval-check-output"]
stream = answers(prompts[:2], batch_size=1)
print(stream.__aiter__() is stream, "| first:", (await anext(stream))[0])
print("the rest:", [prompt async for prompt, _ in stream])

# %% [markdown]
# If you `break` out of an `async for`, the generator is left suspended, and its
# `finally` blocks run only when it is garbage-collected, or never. When a generator
# holds a resource (an open stream), close it deterministically:
# `async with contextlib.aclosing(gen) as items: async for item in items: ...`.

# %% [markdown]
# ## Backpressure with `asyncio.Queue`
#
# A pipeline has stages that run at different speeds: reading prompts from a file is
# fast, calling the model is slow. If the reader pushes everything onto an unbounded
# queue, memory holds the whole dataset before the first answer comes back. A queue with
# `maxsize` gives **backpressure**: `await queue.put(item)` waits while the queue is full,
# so the producer slows to the pace of the consumers.
#
# A producer feeding 12 prompts to 3 workers (the consumers), with and without a bound:

# %%
async def producer(queue: asyncio.Queue, count: int, peak: list[int]) -> float:
    start = time.perf_counter()
    for i in range(count):
        await queue.put(f"prompt {i}")  # waits while the queue is full
        peak[0] = max(peak[0], queue.qsize())
    return time.perf_counter() - start


async def worker(queue: asyncio.Queue, results: list[str]) -> None:
    while True:
        prompt = await queue.get()
        try:
            results.append(await ask(prompt, "latency:20ms"))
        finally:
            queue.task_done()


for maxsize in (0, 3):  # 0 means unbounded
    queue, results, peak = asyncio.Queue(maxsize=maxsize), [], [0]
    workers = [asyncio.create_task(worker(queue, results)) for _ in range(3)]
    start = time.perf_counter()
    produced_in = await producer(queue, 12, peak)
    await queue.join()  # every item taken and marked done
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    print(
        f"maxsize={maxsize}: producer done after {produced_in:.2f}s of "
        f"{time.perf_counter() - start:.2f}s;"
        f" queue peaked at {peak[0]} items; {len(results)} answers"
    )

# %% [markdown]
# Unbounded, the producer finished at once and all 12 prompts sat in memory. Bounded,
# the queue never held more than 3, and the producer could not finish until the workers
# had made room: it ran at their pace. With millions of prompts, or documents to embed,
# that is the difference between a steady memory footprint and running out. The
# shutdown idiom is worth copying: `queue.join()` waits until every item is marked
# `task_done()`, then the workers (which loop forever) are cancelled and awaited.

# %% [markdown]
# ## `httpx.AsyncClient` done right
#
# ### Connection pooling: one client, reused
#
# A client keeps a **pool** of open connections and reuses them. A new connection to a
# real provider costs a TCP handshake and a TLS handshake: several round trips, often
# tens of milliseconds, before the request is even sent. Creating the client costs too
# (it builds a TLS context). Even on localhost, with no TLS at all, a client per call is
# measurably slower:

# %%
headers = {"Authorization": f"Bearer {server.api_key}", "X-Mock-Scenario": "ok"}
body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "Hi"}]}

with timed("5 calls, one shared client"):
    for _ in range(5):
        await client.post("/v1/chat/completions", json=body, headers=headers)

with timed("5 calls, a new client each"):
    for _ in range(5):
        async with httpx.AsyncClient(base_url=server.base_url) as throwaway:
            await throwaway.post("/v1/chat/completions", json=body, headers=headers)

# %% [markdown]
# So: **one client per application** (per provider, if their settings differ), created
# at start-up, passed to whatever needs it, closed at shutdown. In a FastAPI service
# that is the lifespan handler:
#
# ```python
# @asynccontextmanager
# async def lifespan(app: FastAPI):
#     app.state.llm = httpx.AsyncClient(base_url=..., limits=..., timeout=...)
#     yield
#     await app.state.llm.aclose()
# ```
#
# ### Limits and timeouts
#
# `httpx.Limits` sizes the pool: `max_connections` (default 100) caps connections open
# at once, so it is also a concurrency cap; `max_keepalive_connections` (default 20)
# caps the idle ones kept for reuse; `keepalive_expiry` closes idle ones after a while.
# A request that finds every connection busy waits for one. With `max_connections=2`,
# eight concurrent calls reach the server two at a time:

# %% tags=["nbval-check-output"]
narrow = httpx.AsyncClient(
    base_url=server.base_url, limits=httpx.Limits(max_connections=2)
)
server.clear_log()
quick = headers | {"X-Mock-Scenario": "latency:30ms"}
await asyncio.gather(
    *(narrow.post("/v1/chat/completions", json=body, headers=quick) for _ in range(8))
)
print("most in flight on the server:", max(record.in_flight for record in server.log))
await narrow.aclose()

# %% [markdown]
# `httpx.Timeout` has four parts. `connect`: opening a connection. `read`: the wait for
# each chunk of the response, so for a non-streaming LLM call it must cover the whole
# generation time (tens of seconds for long answers), while for a stream it is the
# longest gap between tokens. `write`: sending the request. `pool`: waiting for a free
# connection, the one that fires when your own concurrency outgrows `max_connections`.
# The default is 5 s for each, too short for many LLM calls. A typical client:
#
# ```python
# llm = httpx.AsyncClient(
#     base_url="https://api.example.com",
#     limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
#     timeout=httpx.Timeout(60.0, connect=5.0, pool=10.0),
# )
# ```
#
# The pool timeout, made to fire: a client with one connection and a 50 ms pool timeout,
# and two concurrent calls that each take 150 ms. The second never gets a connection:

# %% tags=["nbval-check-output"]
tight = httpx.AsyncClient(
    base_url=server.base_url,
    limits=httpx.Limits(max_connections=1),
    timeout=httpx.Timeout(5.0, pool=0.05),
)
slow = headers | {"X-Mock-Scenario": "latency:150ms"}
outcomes = await asyncio.gather(
    *(tight.post("/v1/chat/completions", json=body, headers=slow) for _ in range(2)),
    return_exceptions=True,
)
print(
    [type(o).__name__ if isinstance(o, Exception) else o.status_code for o in outcomes]
)
await tight.aclose()

# %% [markdown]
# A `PoolTimeout` in production means you send more concurrent requests than the pool
# allows: raise `max_connections`, or (better) put a semaphore in front that matches it.
#
# ### Closing it
#
# `await client.aclose()`, or `async with httpx.AsyncClient() as client:`. A client that
# is simply dropped leaves its connections open until the garbage collector finds the
# sockets. Python reports that with a `ResourceWarning`, which is hidden by default
# (run with `python -X dev` or `-W default` to see them). Made visible:

# %%
import gc
import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    leaky = httpx.AsyncClient(base_url=server.base_url)
    await leaky.post("/v1/chat/completions", json=body, headers=headers)
    del leaky  # dropped without aclose()
    gc.collect()
for warning in caught:
    print(warning.category.__name__, str(warning.message).split(" fd=")[0])

# %% [markdown]
# In a long-running service, a client per request that is never closed leaks a socket
# per request until the process hits its file limit ("Too many open files").

# %% [markdown]
# ## Pitfalls
#
# ### Blocking the event loop
#
# The loop runs one task at a time and switches only at `await`. A call that blocks
# without awaiting (`time.sleep`, a synchronous HTTP client such as `requests` or
# `httpx.Client`, a big JSON parse, a CPU-heavy step) stops **every** task: in a service,
# every user's request freezes while it runs.
#
# To see it, run a heartbeat task that ticks every 10 ms, and measure the longest gap
# between ticks while some work runs in another task:

# %%
async def heartbeat(gaps: list[float]) -> None:
    last = time.perf_counter()
    while True:
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def longest_gap(work) -> float:
    gaps: list[float] = []
    beat = asyncio.create_task(heartbeat(gaps))
    await asyncio.sleep(0.02)
    await work()
    await asyncio.sleep(0.02)
    beat.cancel()
    return max(gaps)


sync_client = httpx.Client(base_url=server.base_url, headers=headers)


def sync_call() -> None:  # a synchronous SDK call
    sync_client.post(
        "/v1/chat/completions", json=body, headers={"X-Mock-Scenario": "latency:80ms"}
    )


async def awaits_sleep() -> None:
    await asyncio.sleep(0.08)


async def blocks_with_sleep() -> None:
    time.sleep(0.08)  # noqa: ASYNC251 (ruff flags this; here it is the point)


async def blocks_with_sync_http() -> None:
    sync_call()  # blocks the loop


async def sync_http_in_thread() -> None:
    await asyncio.to_thread(sync_call)


for work in (
    awaits_sleep,
    blocks_with_sleep,
    blocks_with_sync_http,
    sync_http_in_thread,
):
    print(
        f"{work.__name__:22} longest heartbeat gap: "
        f"{await longest_gap(work) * 1000:4.0f} ms"
    )

# %% [markdown]
# The heartbeat kept ticking through `asyncio.sleep`, and stopped dead for the whole of
# `time.sleep` and the synchronous HTTP call. (The sync call did not hang forever only
# because the course's server runs in its own thread; had it run on this event loop, a
# blocking call to it would wait for an answer the blocked loop could never produce.)
#
# The fixes, in order of preference:
#
# 1. Use the async version: `asyncio.sleep`, `httpx.AsyncClient`, the provider SDK's
#    async client (`AsyncOpenAI`, `AsyncAnthropic`).
# 2. For a blocking call you cannot replace, **`await asyncio.to_thread(func, *args)`**
#    runs it in a worker thread while the loop goes on, as the last line shows. It copies
#    the current `contextvars` into the thread, so request IDs survive (chapter 8).
# 3. **`loop.run_in_executor(executor, func, *args)`** is the older, more general form:
#    pass `None` for the default thread pool, or your own executor, such as the process
#    pool used for the embeddings above, for CPU-heavy work. It takes no keyword
#    arguments; wrap them in `functools.partial`.
#
# To find blocking calls before they ship: ruff's `ASYNC` rules flag `time.sleep`, sync
# HTTP clients and blocking file calls inside `async def` (that is why `time.sleep` above
# carries a `noqa`). To find the ones you did not know about, run with asyncio's debug
# mode (`PYTHONASYNCIODEBUG=1`, or `asyncio.run(main(), debug=True)`): it logs every step
# that holds the loop longer than 100 ms.
#
# ### A forgotten `await`
#
# Call a coroutine function without `await` and you get a coroutine object: no request
# is sent, no error is raised on that line. The bug shows up later, as a confusing
# `TypeError`/`AttributeError` where the value is used, or not at all, and the only
# trace is a `RuntimeWarning` when the coroutine object is garbage-collected:

# %%
server.clear_log()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    answer = ask("Translate this to French")  # the await is missing
    print(f"answer is {answer!r:.45}... | requests sent: {len(server.log)}")
    try:
        answer.upper()
    except AttributeError as exc:
        print("AttributeError:", exc)
    del answer
    gc.collect()
print(f"{caught[0].category.__name__}: {caught[0].message}")

# %% [markdown]
# Let the tools find these: mypy reports a coroutine called as a bare statement
# (`[unused-coroutine]`), and a coroutine used where a `str` is expected
# (`answer.upper()` above) as a type error.
#
# ### Fire-and-forget tasks lost to garbage collection
#
# `asyncio.create_task(log_usage(...))` without keeping the task looks harmless. But the
# event loop keeps only **weak references** to tasks. A task stays alive only while
# something references it strongly: the loop does while the task is ready to run, and a
# timer or a socket the task waits on does through its callbacks. So a sleeping task, or
# one waiting for a response, usually survives in CPython. A task waiting for a future,
# an `Event` or a `Queue` that nothing else holds is garbage, and the next collection
# destroys it halfway through. (The documentation promises nothing either way: it says
# to keep a reference.)
#
# Both cases, checked with a weak reference and an explicit `gc.collect()`. The loop's
# exception handler, which normally logs to stderr, prints here instead:

# %% tags=["nbval-check-output"]
import weakref


async def sleeps_then_logs() -> None:
    await asyncio.sleep(0.05)


async def waits_for_approval(approved: asyncio.Event) -> None:
    await approved.wait()
    print("approved: sending the email")


loop = asyncio.get_running_loop()
loop.set_exception_handler(
    lambda loop, context: print(f"event loop reports: {context['message']}")
)

sleeping = weakref.ref(asyncio.create_task(sleeps_then_logs()))
waiting = weakref.ref(asyncio.create_task(waits_for_approval(asyncio.Event())))
await asyncio.sleep(0)  # let both tasks start and suspend
gc.collect()
print("sleeping task still alive:", sleeping() is not None)
print("waiting task still alive:", waiting() is not None)
loop.set_exception_handler(None)

# %% [markdown]
# The waiting task was destroyed while pending: its remaining code never runs, and
# nothing but a log line tells you. In a real service the "event" is whatever a
# background task waits on, and the symptom is work that silently never happens, now
# and then, depending on when the collector runs.
#
# A second problem with forgotten tasks: if one fails, nobody awaits it, so its
# exception surfaces only as "Task exception was never retrieved" in the logs, if at all.
#
# The fix is to hold the task until it is done, and to look at its outcome. The standard
# idiom is a set plus a done callback (the `background` set in the `shield` example).
# The same task as before now survives the collector, and a failing one is reported:

# %% tags=["nbval-check-output"]
def log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        print(
            f"background task {task.get_name()} failed: "
            f"{type(task.exception()).__name__}"
        )


def spawn(coroutine, name: str) -> asyncio.Task:
    task = asyncio.create_task(coroutine, name=name)
    background.add(task)  # a strong reference until it is done
    task.add_done_callback(background.discard)
    task.add_done_callback(log_failure)
    return task


kept = weakref.ref(spawn(waits_for_approval(asyncio.Event()), "approval"))
spawn(ask("usage report", "error:500"), "usage-report")
await asyncio.sleep(0.05)
gc.collect()
print("waiting task still alive:", kept() is not None)
kept().cancel()  # it can never be approved: clean it up
await asyncio.sleep(0.01)
print("background tasks left:", len(background))

# %% [markdown]
# Better still, give background work an owner: a `TaskGroup` that lives as long as the
# service (in the FastAPI lifespan, say), so every task is awaited and none outlives
# the application.
#
# ### `asyncio.run` inside a running loop
#
# Shown above: `RuntimeError: asyncio.run() cannot be called from a running event loop`.
# In a notebook, `await`; in a script, one `asyncio.run` at the entry point. A
# synchronous helper, called from async code, that needs to run a coroutine should
# become `async def` and be awaited, rather than start a loop inside the loop.
#
# ### Clients never closed
#
# Shown above too: open sockets until the garbage collector runs, `ResourceWarning`s
# nobody sees, then "Too many open files". One client per application, closed in the
# shutdown handler, or `async with` for short scripts.

# %% [markdown]
# ## Worked example: evaluating many prompts
#
# An evaluation harness sends every prompt of a test set to the model and scores the
# answers. It puts this chapter together:
#
# - a **semaphore** caps requests in flight (providers throttle, pools are finite);
# - an **`asyncio.timeout`** per call, so one stuck request cannot stall the run;
# - failures are **results**, recorded per case, so 2 failures out of 16 leave 14 scores;
# - an **`X-Request-ID`** per case, so each result can be found in the server's (or the
#   provider's) logs: the correlation ID the exercise asks for (there, one
#   `uuid.uuid4().hex` per call, sent again with each retry of that call).
#
# A real harness scores each answer against a reference; here `score` only checks that
# there is an answer of reasonable length, because the point is the plumbing. The
# `jitter:10-30ms` scenario gives each call a random latency, as a real API would.

# %%
from dataclasses import dataclass


@dataclass
class CaseResult:
    case_id: str
    score: float | None
    error: str | None
    seconds: float


def score(answer: str) -> float:
    return 1.0 if 3 <= len(answer.split()) <= 200 else 0.0


async def evaluate_case(
    case_id: str, prompt: str, scenario: str, limit: asyncio.Semaphore
) -> CaseResult:
    async with limit:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(1.0):
                answer = await ask(prompt, scenario, request_id=f"eval-{case_id}")
        except (httpx.HTTPError, TimeoutError) as exc:
            return CaseResult(
                case_id, None, type(exc).__name__, time.perf_counter() - start
            )
        return CaseResult(case_id, score(answer), None, time.perf_counter() - start)


async def evaluate(
    cases: list[tuple[str, str, str]], concurrency: int
) -> list[CaseResult]:
    limit = asyncio.Semaphore(concurrency)
    return await asyncio.gather(*(evaluate_case(*case, limit) for case in cases))


cases = [
    (
        f"c{i:02}",
        f"Question {i} about the refund policy",
        "error:503" if i in (7, 12) else "jitter:10-30ms",
    )
    for i in range(16)
]

# %%
for concurrency in (1, 8):
    server.clear_log()
    start = time.perf_counter()
    results = await evaluate(cases, concurrency)
    elapsed = time.perf_counter() - start
    failed = [r.case_id for r in results if r.error]
    mean = sum(r.score for r in results if r.score is not None) / sum(
        r.score is not None for r in results
    )
    peak = max(record.in_flight for record in server.log)
    print(
        f"concurrency {concurrency}: {elapsed:.2f}s, most in flight {peak}, failed "
        f"{failed}, score {mean}"
    )

# %% [markdown]
# Same code, same results: the concurrent run finishes several times faster, and the
# server never sees more requests at once than the limit. Every result can be traced to
# the request that produced it:

# %%
by_id = {record.request_id: record for record in server.log}
for result in results[6:8]:
    record = by_id[f"eval-{result.case_id}"]
    print(f"{result.case_id}: error={result.error}, server sent {record.status}"
          f" with {record.in_flight} in flight, scenario {record.scenario!r}")

# %% [markdown]
# To grow this into a production harness: retry the retryable failures with backoff
# (chapter 6), add a token bucket for the provider's per-minute quota, stream results to
# disk with `as_completed` so a crash does not lose the run, and log each call with its
# request ID and latency (chapter 8). The first exercise builds most of that into a
# client.

# %%
sync_client.close()
await client.aclose()
server.stop()

# %% [markdown]
# ## Check your understanding
#
# **1. Concurrency vs parallelism.** A colleague says "asyncio runs our 50 API calls in
# parallel". What is right and what is wrong about that, and would the same code speed
# up 50 local embedding computations?
#
# ```{admonition} Answer
# :class: dropdown
# The calls run *concurrently*: all 50 are in progress over the same period, their
# waits overlapping. They are not *parallel*: asyncio runs on one thread, executing one
# task's Python code at a time, and switches at each `await`. That is enough because the
# time goes into waiting for the network and the provider. Local embeddings are CPU
# work with nothing to wait for, so asyncio (or threads, because of the GIL) does not
# speed them up; a process pool, a GPU or a native library that releases the GIL does.
# ```
#
# **2. `gather` vs `wait` vs `TaskGroup`.** Which would you use for (a) scoring 1,000
# evaluation prompts, where some will fail; (b) asking two providers and using whichever
# answers first; (c) fetching documents, profile and history that one answer needs
# together?
#
# ```{admonition} Answer
# :class: dropdown
# (a) `gather(..., return_exceptions=True)` behind a semaphore (or per-case error
# handling, as in the worked example): every case gets a result or an exception, and one
# failure does not discard the others. (b) `wait(..., return_when=FIRST_COMPLETED)`, then
# cancel and await the pending tasks. (c) `TaskGroup`: if one part fails, the others are
# useless, and the group cancels them and raises an `ExceptionGroup` with every failure,
# which `except*` can handle by type. Plain `gather` there would leave the siblings
# running after the first error.
# ```
#
# **3.** An `async def` FastAPI endpoint calls `requests.post(...)` to the provider. It
# works in testing. Under load, latency climbs for every endpoint, even the health
# check. Why, and what are the two fixes?
#
# ```{admonition} Answer
# :class: dropdown
# `requests.post` blocks the event loop for the whole provider call, so no other
# request on that worker, health checks included, makes progress until it returns:
# requests are served one at a time. Best fix: an async client (`httpx.AsyncClient`, or
# the SDK's async client) and `await`. If the blocking library cannot be replaced:
# `await asyncio.to_thread(requests.post, ...)`.
# ```
#
# **4.** A task waiting on a slow call is cancelled by `asyncio.timeout`. Its code has
# `except asyncio.CancelledError: logger.info("cancelled")` with no `raise`. What goes
# wrong?
#
# ```{admonition} Answer
# :class: dropdown
# The coroutine swallows the cancellation and carries on (or returns) as if nothing
# happened. The timeout raises no `TimeoutError`, so the caller takes a cut-short call
# for a success, or waits past its deadline for work that continues; a `TaskGroup` or a
# shutdown that cancels the task cannot rely on it stopping. Log and clean up in the
# handler or in `finally`, then re-raise.
# ```
#
# **5.** `asyncio.create_task(save_eval_result(result))` is called without keeping the
# returned task. Name two ways this can go wrong, and the fix.
#
# ```{admonition} Answer
# :class: dropdown
# The loop keeps only a weak reference to the task, so if what it waits on is not held
# elsewhere, the garbage collector can destroy it mid-way ("Task was destroyed but it is
# pending!") and the result is never saved. And if it fails, nobody awaits it, so the
# error only appears as "Task exception was never retrieved", if anyone reads the logs.
# Keep a strong reference (a set plus `add_done_callback(set.discard)`), look at the
# outcome in a done callback, or give the task an owner such as a long-lived `TaskGroup`.
# ```
#
# **6.** Your service creates `httpx.AsyncClient()` inside each request handler and
# never closes it. Name what that costs.
#
# ```{admonition} Answer
# :class: dropdown
# Every request pays for a new client (a TLS context) and a new connection (TCP and TLS
# handshakes to the provider) instead of reusing a pooled one. The pool's limits never
# apply, because every request has its own pool, so nothing caps connections to the
# provider. And the unclosed clients leave sockets open until garbage collection, which
# can exhaust file descriptors. One client per application, created at start-up and
# closed with `aclose()` at shutdown.
# ```

# %% [markdown]
# ## Summary
#
# - Concurrency overlaps tasks in time; parallelism runs them at the same instant.
#   asyncio is concurrency on one thread: ideal for API calls, useless for CPU work,
#   which needs processes (the GIL stops threads from computing Python in parallel).
# - Calling a coroutine function makes a coroutine object; `await` runs it and lets the
#   loop run other tasks while it waits; `create_task` runs it alongside. In notebooks
#   use top-level `await`; in scripts, one `asyncio.run`. Get the loop with
#   `get_running_loop()`.
# - `gather` for all results in order (`return_exceptions=True` for batches), `wait`
#   for the first to finish, `as_completed` for completion order, `TaskGroup` and
#   `except*` for all-or-nothing work.
# - Bound concurrency with a semaphore, put deadlines on calls with `asyncio.timeout`
#   or `wait_for`, clean up in `finally` and re-raise `CancelledError`; `shield` work
#   that must finish.
# - `async with` and `async for` for resources and streams of results; a bounded
#   `asyncio.Queue` for backpressure between pipeline stages.
# - One `httpx.AsyncClient` per application, sized with `Limits` and `Timeout`, closed
#   at shutdown.
# - Never block the loop (`to_thread` or `run_in_executor` for what you cannot make
#   async), never forget an `await`, keep a reference to every background task.

# %% [markdown]
# ## Next
#
# Build an async client that respects a provider's rate limit (token bucket, backoff
# with jitter honouring `Retry-After`, a correlation ID and a structured log line per
# call), and fix a slow, blocking script, in [the exercises](../exercises/04_async).
#
# Then [Chapter 5](05_pydantic) validates the data that crosses into your service, once,
# at the boundary.
