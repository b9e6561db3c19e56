"""Observability: one log line per request (method, path, status, milliseconds; `tritlm serve --log-level`) and
Prometheus metrics at /metrics (prometheus-client, a registry per app): requests by endpoint and status, prompt
and generated tokens, queue depth, slot use, and prompt and generation tokens/s measured by the scheduler, and the
scheduler's passes, their seconds and the generated tokens they fed back (scripts/load_test.py reads these three
around each round: the share of the round the engine was at work, and the streams in an average pass)."""

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily

log = logging.getLogger("tritlm.server")

ENDPOINTS = {
    "/v1/completions",
    "/v1/chat/completions",
    "/v1/models",
    "/health",
    "/tokenize",
    "/detokenize",
    "/apply-template",
    "/metrics",
    "/",
}


class Metrics:
    def __init__(self, scheduler):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "tritlm_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=registry
        )
        self.prompt_tokens = Counter("tritlm_prompt_tokens", "prompt tokens of finished requests", registry=registry)
        self.generated_tokens = Counter(
            "tritlm_generated_tokens", "tokens generated for finished requests", registry=registry
        )
        stats = scheduler.stats
        for name, doc, value in (
            ("tritlm_requests_waiting", "requests queued for a slot", lambda: scheduler.n_waiting),
            ("tritlm_slots_busy", "slots holding a request", lambda: scheduler.n_busy),
            ("tritlm_slots", "slots (--parallel)", lambda: scheduler.n_slots),
            (
                "tritlm_prompt_tokens_per_second",
                "prompt tokens prefilled per second of prefill, since start",
                lambda: stats.prompt_tokens / stats.prompt_seconds if stats.prompt_seconds else 0.0,
            ),
            (
                "tritlm_generation_tokens_per_second",
                "tokens decoded per second of decode passes, since start",
                lambda: stats.decoded_tokens / stats.decode_seconds if stats.decode_seconds else 0.0,
            ),
        ):
            Gauge(name, doc, registry=registry).set_function(value)
        registry.register(PassCounts(stats))

    def finished(self, prompt_tokens: int, generated_tokens: int) -> None:
        self.prompt_tokens.inc(prompt_tokens)
        self.generated_tokens.inc(generated_tokens)


class PassCounts:
    """The scheduler's Stats as counters, read when scraped."""

    def __init__(self, stats):
        self.stats = stats

    def collect(self):
        s = self.stats
        for name, doc, value in (
            ("tritlm_passes", "forward passes run", s.passes),
            ("tritlm_pass_seconds", "seconds spent in forward passes", s.prompt_seconds + s.decode_seconds),
            ("tritlm_decoded_tokens", "generated tokens fed to the model (a stream's one per pass)", s.decoded_tokens),
        ):
            yield CounterMetricFamily(name, doc, value=value)


class RequestLog:
    """ASGI middleware: logs `METHOD path status ms` at INFO when the response starts, and counts it."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def logged(message):
            if message["type"] == "http.response.start":
                path, status = scope.get("path", ""), message["status"]
                self.metrics.requests.labels(path if path in ENDPOINTS else "other", str(status)).inc()
                log.info("%s %s %d %.1f ms", scope.get("method"), path, status, 1000 * (time.perf_counter() - start))
            await send(message)

        await self.app(scope, receive, logged)
