"""The evaluation's background job, queued by name (services need not import the task that calls them back)."""

RUN_EVALUATION = "kb.evaluation.tasks.evaluation_run_execute"
