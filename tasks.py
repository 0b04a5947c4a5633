"""The root Invoke namespace: it mounts the task modules of migrate/tasks and nothing else."""

from invoke import Collection

from migrate.tasks import archives, demo, inventory, lab, mailman, playbook, runs

ns = Collection()
for module in (inventory, lab, mailman, archives, runs, playbook, demo):
    ns.add_collection(module.ns)
