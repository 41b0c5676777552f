# syntax=docker/dockerfile:1
# The revleak image: the live flows (`revleak run crm|telemetry`) and the API (`revleak api`).
# docker-compose.yml builds it for its three revleak services; docs/operations.md deploys it.
#
#   docker build -t revleak:local .

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# The package and its dependencies go into a virtual environment that the runtime stage
# copies whole, so neither the sources nor pip's build environment reach the final image.
RUN python -m venv /opt/revleak
WORKDIR /src
COPY pyproject.toml README.md ./
COPY revleak revleak
COPY connectors connectors
COPY dataflows dataflows
COPY loadtest loadtest
COPY remediation remediation
COPY api api
COPY slos slos
COPY data data
RUN /opt/revleak/bin/pip install .


FROM python:3.11-slim

# git and ssh: the GitOps executor clones deployment repositories and pushes the fix packs'
# commits (https or ssh remotes). sqlite3: online backups of the audit store (`.backup`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client sqlite3 \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid lets volumes, secrets and Kubernetes' securityContext name the user by number.
# /var/lib/revleak is where every service keeps its state; a fresh named volume mounted there
# takes this ownership.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/revleak revleak \
    && install -d -o revleak -g revleak /var/lib/revleak

COPY --from=build /opt/revleak /opt/revleak

# PYTHONSAFEPATH: the working directory never shadows the installed package.
ENV PATH=/opt/revleak/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1

USER revleak
WORKDIR /var/lib/revleak

# 8000: the API; 9464 and 9465: /metrics of the CRM and telemetry flows in docker-compose.yml.
EXPOSE 8000 9464 9465
CMD ["revleak", "api", "--host", "0.0.0.0", "--port", "8000"]
