# syntax=docker/dockerfile:1
# The images a scheduled game day runs in (`gameday schedule export NAME --kubernetes`
# writes the CronJob). Two targets, built at the repository's root:
#
#   docker build --target gameday -t gameday:0.1.0 .
#       gameday's base image: gameday with Ansible and ansible-runner for the runbooks and
#       kubectl for their commands, an empty project directory /app, user 10001. A project
#       made by `gameday init` builds its own image on it (the Dockerfile in the project).
#   docker build -t REGISTRY/gameday-shop:TAG .
#       this repository's own project on that base (the last stage): its gameday.toml,
#       scenarios, experiments and runbooks in /app, exactly as a project's Dockerfile
#       copies them.
#
# The pod runs as user 10001 on a read-only root filesystem; its state directory
# (/app/.gameday), home, /tmp and /reports are emptyDirs, and its kubeconfig (the cluster
# it runs in, through its ServiceAccount) is a ConfigMap, all set up by the CronJob.
# gameday.schedules.cronjob assumes /app (PROJECT_DIR) and user 10001 (UID): keep them in step.

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
# The dependencies exactly as locked (versions and hashes: `make lock`), then gameday.
COPY requirements/app.txt requirements/app.txt
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements/app.txt
COPY pyproject.toml README.md ./
COPY gameday/ gameday/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation ./

# -- gameday: the base image, no project in it ---------------------------------------------
FROM python:3.11.13-slim-bookworm AS gameday

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

# The project goes here: gameday finds gameday.toml in its working directory, and the
# scenarios, experiments and runbooks beside it (the sandbox's runbooks and alert rules
# ship inside the package).
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["gameday"]
CMD ["--help"]

# -- this repository's project on the base (what gameday/scaffold/Dockerfile does) -------
FROM gameday AS project

WORKDIR /app
COPY gameday.toml ./
COPY scenarios/ scenarios/
COPY experiments/ experiments/
COPY runbooks/ runbooks/
USER 10001:10001
