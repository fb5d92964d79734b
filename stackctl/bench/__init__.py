"""`inv bench`: how fast the stack builds, starts, reloads and serves, on the real engine.

Everything runs in a throwaway copy of the working tree under .cache/ with Compose project
names, host ports and image tags of its own, so a developer's stacks (and the working tree)
are never touched; the copy, its containers, volumes and the images it tagged are removed
afterwards, also on failure or Ctrl-C.

Each figure is measured `runs` times and reported as median, min and max. Sections:

  build    cold prod build of each image (`--no-cache`; base images and cache mounts kept)
  rebuild  prod rebuild after a one-line change in a backend and in a frontend source file
  sizes    prod image sizes, total and over the base image
  load     prod API throughput and latency with wrk, through the frontend origin (nginx ->
           backend) and straight to the backend, plus each container's memory and CPU
  up       `inv up` to all-healthy (dev stack, images built): from stopped containers and
           from no containers (data volume kept)
  reload   dev stack: backend reload and Vite HMR, from a file write to the new content served

Modules, one job each: runner (the run, its sections in order, signals), tree (the copy),
figures (samples -> median, min, max), builds, load and dev (the sections), wrk (the one wrk
harness), reload (the one reload-latency measurement), loopback (the HTTP client, 127.0.0.1
only), machine (machine state, docker stats, CPU). Budgets, the table and the JSON report
are stackctl.budgets'.
"""

from .runner import SECTIONS, run, select_sections

__all__ = ["SECTIONS", "run", "select_sections"]
