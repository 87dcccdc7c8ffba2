"""Per-engine operating figures in Prometheus form: what the deployment guide says to watch."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class EngineMetrics:
    """One registry per serving process; every figure is labelled with the model it is about."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kb_inference_requests",
            "Requests that reached an engine, by outcome",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "kb_inference_errors", "Requests that failed inside an engine", ["model"], registry=self.registry
        )
        self.fallbacks = Counter(
            "kb_inference_fallbacks",
            "Requests that skipped a model on the route, and why",
            ["model", "reason"],
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "kb_inference_time_to_first_token_seconds",
            "From accepting a request to its first generated text",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.output_tokens_per_second = Histogram(
            "kb_inference_output_tokens_per_second",
            "Generated tokens per second of one request after its first token",
            ["model"],
            buckets=RATE_BUCKETS,
            registry=self.registry,
        )
        self.output_tokens = Counter(
            "kb_inference_output_tokens", "Generated tokens", ["model"], registry=self.registry
        )
        self.prompt_tokens = Counter(
            "kb_inference_prompt_tokens", "Prompt tokens processed", ["model"], registry=self.registry
        )
        self.cached_prompt_tokens = Counter(
            "kb_inference_cached_prompt_tokens",
            "Prompt tokens served from the prefix cache, not computed again",
            ["model"],
            registry=self.registry,
        )
        self.running = Gauge(
            "kb_inference_running_requests", "Requests generating now", ["model"], registry=self.registry
        )
        self.queued = Gauge(
            "kb_inference_queued_requests", "Requests waiting for a free slot", ["model"], registry=self.registry
        )
        self.load_seconds = Gauge(
            "kb_inference_model_load_seconds", "How long loading the model took", ["model"], registry=self.registry
        )
        self.registry.register(GpuMemoryCollector(prefix="kb_inference"))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class GpuMemoryCollector:
    """GPU memory per device through NVML when an NVIDIA driver is present; nothing otherwise. The figures are the
    device's (every process on it), named after the process that reports them: `<prefix>_gpu_memory_used_bytes`."""

    def __init__(self, *, prefix: str) -> None:
        self.prefix = prefix

    def collect(self):
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # no NVIDIA driver on this machine (pynvml raises its own NVMLError subclasses)
            return
        used = GaugeMetricFamily(f"{self.prefix}_gpu_memory_used_bytes", "GPU memory in use", labels=["gpu"])
        total = GaugeMetricFamily(f"{self.prefix}_gpu_memory_total_bytes", "GPU memory in all", labels=["gpu"])
        try:
            for index in range(pynvml.nvmlDeviceGetCount()):
                memory = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
                used.add_metric([str(index)], memory.used)
                total.add_metric([str(index)], memory.total)
        finally:
            pynvml.nvmlShutdown()
        yield used
        yield total
