# syntax=docker/dockerfile:1
# The image a scheduled game day runs in (`gameday schedule export NAME --kubernetes`
# writes the CronJob): gameday with Ansible and ansible-runner for the runbooks, kubectl
# for the runbooks' commands, and this project's scenarios, experiments and runbooks.
# Build it at the repository's root:
#   docker build -t gameday:0.1.0 .
# The pod runs as user 10001 on a read-only root filesystem; its state directory
# (/app/.gameday), home, /tmp and /reports are emptyDirs, and its kubeconfig (the cluster
# it runs in, through its ServiceAccount) is a ConfigMap, all set up by the CronJob.

# -- build: a virtualenv with gameday and its dependencies, and a checked kubectl --------
FROM python:3.11.13-slim-bookworm AS build

ARG KUBECTL_VERSION=v1.32.3
ARG TARGETARCH
ADD https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH:-amd64}/kubectl /tmp/kubectl
ADD https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH:-amd64}/kubectl.sha256 /tmp/kubectl.sha256
RUN printf '%s  /tmp/kubectl\n' "$(cat /tmp/kubectl.sha256)" > /tmp/kubectl.check \
    && sha256sum --check --strict /tmp/kubectl.check \
    && install -m 0755 /tmp/kubectl /usr/local/bin/kubectl

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gameday/ gameday/
RUN /opt/venv/bin/pip install --no-cache-dir ./

# -- run: the virtualenv, kubectl and the project, as a user that is not root ----------
FROM python:3.11.13-slim-bookworm

RUN groupadd --gid 10001 gameday \
    && useradd --uid 10001 --gid 10001 --home-dir /home/gameday --create-home \
       --shell /usr/sbin/nologin gameday
COPY --from=build /opt/venv /opt/venv
COPY --from=build /usr/local/bin/kubectl /usr/local/bin/kubectl

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/gameday \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The project: gameday finds gameday.toml here, and the scenarios, experiments and
# runbooks beside it (the sandbox's runbooks and alert rules ship inside the package).
WORKDIR /app
COPY gameday.toml ./
COPY scenarios/ scenarios/
COPY experiments/ experiments/
COPY runbooks/ runbooks/

USER 10001:10001
ENTRYPOINT ["gameday"]
CMD ["--help"]
