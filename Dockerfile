# DefectAug app image. On a machine with an NVIDIA GPU run with `--gpus all`: torch uses CUDA when present.
#   docker build -t defectaug . && docker run -p 8501:8501 -v $PWD/workspace:/app/workspace defectaug
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 DEFECTAUG_HOME=/app/workspace
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"
CMD ["scripts/serve.sh", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
