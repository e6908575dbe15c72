# DefectAug app image: the README's own install and start commands (scripts/install.sh at build, scripts/app.sh
# at start, which re-checks the install and starts the app); the background worker runs inside (the app starts
# it); workspaces (uploads, runs, jobs.db) on a volume, datasets read-only from another.
#
#   CPU:   docker build -t defectaug .
#          docker run -p 8501:8501 -v $PWD/workspaces:/app/workspaces -v /path/to/datasets:/data:ro defectaug
#   CUDA:  docker build --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 -t defectaug:cuda .
#          docker run --gpus all -p 8501:8501 -v $PWD/workspaces:/app/workspaces -v /path/to/datasets:/data:ro defectaug:cuda
#
# torch uses CUDA when the container sees a GPU (pip's Linux torch wheel carries the CUDA runtime), the CPU
# otherwise. The same image is a Ray node (README, "Running on a cluster").
ARG BASE=python:3.11-slim
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 DEBIAN_FRONTEND=noninteractive \
    DEFECTAUG_HOME=/app/workspaces DEFECTAUG_DATA_ROOTS=/data
# a CUDA base image has no Python of its own: take the distribution's
RUN if ! python3 -m venv --help >/dev/null 2>&1; then \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv && \
      rm -rf /var/lib/apt/lists/*; fi
WORKDIR /app
COPY requirements.txt ./
COPY scripts/install.sh scripts/
RUN bash scripts/install.sh
COPY . .
VOLUME ["/app/workspaces"]
EXPOSE 8501
HEALTHCHECK CMD .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"
CMD ["bash", "scripts/app.sh", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
