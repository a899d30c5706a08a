# Parley's container image: one image, one service per container (`python -m services.<name>`, the
# container's arguments; the gateway by default). docs/operations.md, "Container image".
#
# The base is a build argument: python:3.11-slim-bookworm for users; where no registry is reachable,
# any Debian-like image with python3 and python3-venv (`make image` imports one made with debootstrap).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# A CA bundle for pip behind a TLS-inspecting proxy (`make image` passes the host's); unset: pip's own.
ARG PIP_CERT
# An image imported from a root file system (podman import) has no PATH of its own.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A C compiler, in this stage only, for the relay's compiled send loop and SRTP unprotect
# (services/relay/_fastsend.c; without it the install goes on and the relay runs them in Python). The
# Python headers come with python:3.11-slim's own Python; Debian's python3 (an imported base) needs
# python3-dev for them. Versions are the base's Debian release's: pinning them would break at its next
# point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && if [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_path("include"))')/Python.h" ]; then \
         apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/parley
WORKDIR /src
# Dependencies first, exactly as locked (versions and hashes), so a code change reuses this layer.
COPY pyproject.toml README.md requirements.lock ./
RUN /opt/parley/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY proto/ proto/
COPY services/ services/
# The Python SDK: `parley demo` (services/cli) drives the platform through it.
COPY sdk/python/parley_sdk/ sdk/python/parley_sdk/
# Not editable, no extras: no code generator, no development broker (Tansu) in the image.
# The extension is optional to pip; here it must have been built (the compiler above is for it). -P: the
# installed package, not the source tree in the working directory.
RUN /opt/parley/bin/pip install --no-compile . \
    && /opt/parley/bin/python -P -c "import services.relay._fastsend" \
    && /opt/parley/bin/python -m compileall -q /opt/parley/lib

FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/parley/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PARLEY_DATA_DIR=/var/lib/parley \
    PARLEY_LOG_FORMAT=json
# A fixed numeric user, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 parley \
    && useradd --system --uid 10001 --gid parley --home-dir /var/lib/parley --no-create-home parley \
    && mkdir -p /var/lib/parley \
    && chown parley:parley /var/lib/parley
COPY --from=build /opt/parley /opt/parley
USER 10001:10001
WORKDIR /var/lib/parley
# gateway HTTP/WebSocket, gRPC (each service's own port by PARLEY_GRPC__*), operations (PARLEY_OPS__PORT)
EXPOSE 8080 50051 9090
ENTRYPOINT ["python", "-m"]
CMD ["services.gateway"]
