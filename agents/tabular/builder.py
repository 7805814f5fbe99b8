"""Tabular Q-learning for `python -m agents.run --agent tabular`: its own program, or all workers in one process."""

from typing import Any, Callable, Dict

import launch as lp
from agents import core
from agents.experiments.config import ExperimentConfig
from agents.tabular import learning, nodes
from agents.tabular.config import TabularConfig
from agents.tabular.evaluation import Judge
from agents.tabular.model import make_model


class TabularBuilder(core.ProgramBuilder):
    """Single, partitioned or averaged Q-learning (see TabularConfig) on an environment with a transition table;
    the workers come from `config.num_workers`, not `--num_actors`. Every merged table is judged exactly (so
    `eval_every` and `eval_episodes` do not apply); runs do not checkpoint; single-process runs repeat exactly."""

    name = "tabular"
    config_class = TabularConfig
    uses_num_actors = False
    repeatable = True

    def check_experiment(self, experiment: ExperimentConfig) -> None:
        model = make_model(experiment.env_name)  # ValueError naming an environment without a table.
        learning.make_run_partition(self.config, experiment.env_name, model)

    def make_program(self, experiment: ExperimentConfig, num_actors: int) -> lp.Program:
        return nodes.make_program(experiment)

    def run_single_process(
        self, experiment: ExperimentConfig, print_fn: Callable[[str], None] = print
    ) -> Dict[str, Any]:
        """Every worker in turn for `merge_steps` steps, then one merge of all of them (synchronous rounds, so a
        seed gives one result); judged after every round."""
        config = self.config
        judge = Judge(experiment, make_model(experiment.env_name), print_fn)
        partition = learning.make_run_partition(config, experiment.env_name, judge.model)
        coordinator = learning.Coordinator(config.mode, partition, judge.model.num_actions, config.num_workers)
        workers = [
            learning.make_worker(config, experiment.env_name, judge.model, worker_id, experiment.seed)
            for worker_id in range(config.num_workers)
        ]
        stopped_by = None
        try:
            while stopped_by is None:
                for worker_id, worker in enumerate(workers):
                    worker.run(config.merge_steps)
                    coordinator.exchange(worker_id, worker.own_rows(), config.merge_steps)
                version, steps, table = coordinator.latest()
                for worker in workers:
                    worker.adopt(table)
                stopped_by = judge.judge(table, steps, version)
        except KeyboardInterrupt:  # Ctrl-C: the result of the last complete round.
            stopped_by = "user"
        version, steps, table = coordinator.latest()
        return judge.finish(stopped_by, table, steps, version)
