"""Dynamic batching: one thread turns concurrent requests into shared forward passes.

Requests wait in a queue. When nothing is running, the scheduler waits up to `max_wait_ms`
for up to `max_batch` rows, prefills them as one left-padded group and decodes them together;
while a batch runs, newly arrived compatible requests are prefilled and join it between decode
steps, and rows that finish (EOS, a stop string, max_tokens, a client gone) leave at once.
Every row keeps its own HHH weights (Eq. gates per row), sampling settings, seed and stop
strings. Only this thread touches the model and its RoutingState; request threads only put
requests in and read events out. An exception fails the requests of the batch it hit, never
the thread.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from .batch import Batch, Row, left_pad
from .protocol import HHHOptions
from .routing_report import routing_report
from .sampling import SamplingSettings, TextTracker, make_generator, next_token
from .served import ServedModel

log = logging.getLogger(__name__)


@dataclass
class Delta:
    index: int
    text: str


@dataclass
class Finished:
    index: int
    text: str
    finish_reason: str  # "stop" | "length"
    completion_tokens: int
    routing: dict | None


@dataclass
class Failed:
    message: str


@dataclass
class GenRequest:
    """One prompt with its n choices; `emit` receives Delta / Finished / Failed events."""

    prompt_ids: list[int]
    max_tokens: int
    emit: Callable[[object], None]
    n: int = 1
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    stop: list[str] = field(default_factory=list)
    hhh: HHHOptions | None = None
    stream: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)


class Scheduler:
    """Owns the model; `submit` from any thread, `start` / `stop` around the server's life."""

    def __init__(self, served: ServedModel, max_batch: int = 8, max_wait_ms: float = 10.0) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(
                f"max_batch must be >= 1 and max_wait_ms >= 0, got {max_batch}, {max_wait_ms}"
            )
        self.served, self.max_batch, self.max_wait = served, max_batch, max_wait_ms / 1000
        self.inbox: queue.Queue[GenRequest | None] = queue.Queue()
        self.pending: deque[GenRequest] = deque()
        self.batch: Batch | None = None
        self.peak_rows = 0  # most rows ever decoded together (batching at work)
        self.cancelled_rows = 0  # rows dropped because their client went away
        self._thread: threading.Thread | None = None
        params = inspect.signature(served.lm.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="trinityx-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.inbox.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, req: GenRequest) -> None:
        self.inbox.put(req)

    @property
    def running(self) -> int:
        b = self.batch
        return 0 if b is None else len(b.rows)

    @property
    def waiting(self) -> int:
        return len(self.pending) + self.inbox.qsize()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while True:
            if not self._collect():
                self._fail_all("the server is shutting down")
                return
            group = self._take_group()
            new = None
            if group:
                try:  # a failing prefill fails its own requests; the running batch goes on
                    new = self._prefill(group, self.served.batch_key(group[0].hhh))
                except Exception as e:
                    self._fail(group, e)
            try:  # a failing join or decode step fails the requests of the batch
                if new is not None:
                    self.batch = new if self.batch is None else self.batch.join(new)
                    self.peak_rows = max(self.peak_rows, self.running)
                if self.batch is not None:
                    self._step()
            except Exception as e:
                rows = [] if self.batch is None else self.batch.rows
                self._fail([r.req for r in rows] + ([] if new is None else group), e)
                self.batch = None

    def _fail(self, reqs: list[GenRequest], e: Exception) -> None:
        log.error("generation failed", exc_info=e)
        for req in {id(r): r for r in reqs}.values():
            req.emit(Failed(f"generation failed: {type(e).__name__}: {e}"))

    def _collect(self) -> bool:
        """Move queued requests into `pending`; when idle, block for one, then wait up to
        max_wait for more (until max_batch rows). False on shutdown."""
        idle = self.batch is None and not self.pending
        deadline = None
        while True:
            if idle and not self.pending:
                item = self.inbox.get()
            elif deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or sum(r.n for r in self.pending) >= self.max_batch:
                    return True
                try:
                    item = self.inbox.get(timeout=left)
                except queue.Empty:
                    return True
            else:
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    return True
            if item is None:
                return False
            self.pending.append(item)
            if idle and deadline is None:
                deadline = time.monotonic() + self.max_wait

    def _take_group(self) -> list[GenRequest]:
        """The compatible head of the queue that fits the batch (FIFO, so no request starves)."""
        rows_now = self.running
        key = None if self.batch is None else self.batch.key
        group: list[GenRequest] = []
        while self.pending:
            req = self.pending[0]
            if req.cancelled.is_set():
                self.pending.popleft()
                continue
            k = self.served.batch_key(req.hhh)
            if (key is not None or group) and k != key:
                break
            if rows_now and rows_now + req.n > self.max_batch:
                break
            group.append(self.pending.popleft())
            key, rows_now = k, rows_now + req.n
        return group

    def _forward(self, ids, mask, cache, routing, record: bool):
        dev = self.served.device
        pos = (mask.cumsum(-1) - 1).clamp_min(0)[:, -ids.shape[1] :]  # (B, T) skip padding
        with self.served.routed(routing, record) as records:
            out = self.served.lm(
                input_ids=ids.to(dev),
                attention_mask=mask.to(dev),
                position_ids=pos.to(dev),
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kw: cache},
            )
            return out.logits[:, -1], list(records)  # (B, V)

    @torch.no_grad()
    def _prefill(self, group: list[GenRequest], key) -> Batch:
        """One forward over the group's prompts (each repeated n times)."""
        rows, prompts, hhh = [], [], []
        for req in group:
            for i in range(req.n):
                rows.append(Row(req, i, make_generator(req.sampling, i), TextTracker(req.stop)))
                prompts.append(req.prompt_ids)
                hhh.append(req.hhh)
        ids, mask = left_pad(prompts, self.served.tokenizer.pad_token_id)
        dev = self.served.device
        routing = self.served.prepare(ids.to(dev), mask.to(dev), hhh)
        cache = DynamicCache()
        logits, records = self._forward(ids, mask, cache, routing, record=True)
        batch = Batch(rows, cache, mask.to(dev), routing, key, logits)
        if records:
            probs = self.served.prompt_probs(records, mask.to(dev))
        else:
            probs = routing.probs
        gates = self.served.step_gates(routing, records)
        for b, row in enumerate(rows):
            row.probs = None if probs is None else probs[b]
            row.dial = None if routing.dial is None else routing.dial[b]
            if gates is not None:
                row.gates.append(gates[b])
        self._record_blocks(batch, records)
        return batch

    def _record_blocks(self, batch: Batch, records) -> None:
        """Per-block gates of this step for the rows that asked for them (hhh.per_token)."""
        want = [
            i for i, r in enumerate(batch.rows) if r.req.hhh is not None and r.req.hhh.per_token
        ]
        if not want:
            return
        blocks = self.served.block_gates(batch.routing, records)  # (B, NB, K) | None
        if blocks is not None:
            for i in want:
                batch.rows[i].layer_gates.append(blocks[i])

    @torch.no_grad()
    def _step(self) -> None:
        """Sample one token per row, emit, retire finished rows, decode the rest one step."""
        b = self.batch
        keep, tokens = [], []
        for i, row in enumerate(b.rows):
            if row.req.cancelled.is_set():
                self.cancelled_rows += 1
                continue
            tok = next_token(b.logits[i], row.sampling, row.out_ids, row.gen)
            row.out_ids.append(tok)
            if self._advance(row, tok):
                keep.append(i)
                tokens.append(tok)
        b.keep(keep)
        if not b.rows:
            self.batch = None
            return
        ids = torch.tensor(tokens, dtype=torch.long)[:, None]  # (B, 1)
        b.mask = torch.cat([b.mask, b.mask.new_ones(len(tokens), 1)], 1)  # (B, L + 1)
        b.logits, records = self._forward(ids, b.mask, b.cache, b.routing, record=True)
        gates = self.served.step_gates(b.routing, records)
        if gates is not None:
            for i, row in enumerate(b.rows):
                row.gates.append(gates[i])
        self._record_blocks(b, records)

    def _advance(self, row: Row, tok: int) -> bool:
        """Update the row's text after token `tok`; emit; False when the row has finished."""
        req = row.req
        eos = tok in self.served.eos_ids
        text = self.served.decode(row.out_ids)
        delta = row.tracker.update(text)
        if eos or row.tracker.stopped:
            row.finish_reason = "stop"
        elif len(row.out_ids) >= req.max_tokens:
            row.finish_reason = "length"
        if row.finish_reason is not None:
            delta += row.tracker.flush()
        if req.stream and delta:
            req.emit(Delta(row.index, delta))
        if row.finish_reason is None:
            return True
        req.emit(
            Finished(
                row.index, row.tracker.text, row.finish_reason, len(row.out_ids), self._report(row)
            )
        )
        return False

    def _report(self, row: Row) -> dict | None:
        return routing_report(self.served, row)

    def _fail_all(self, message: str) -> None:
        reqs = list(self.pending) + ([] if self.batch is None else [r.req for r in self.batch.rows])
        while not self.inbox.empty():
            item = self.inbox.get_nowait()
            if item is not None:
                reqs.append(item)
        for req in {id(r): r for r in reqs}.values():
            req.emit(Failed(message))
        self.pending.clear()
        self.batch = None
