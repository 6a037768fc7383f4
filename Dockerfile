# syntax=docker/dockerfile:1
# airbag's container image. Stages:
#   build              Debian 12 with the build dependencies; builds exactly as the README says
#   runtime-base       Debian 12 slim with only the shared libraries the binaries load
#   demo-model-server  the demo model server, for trying things:  docker build --target demo-model-server .
#   airbag             the default target: airbag as the entrypoint, a non-root user
# tests/deploy/image_test.mjs checks the runtime stages against `ldd` of the built binaries (and of
# libcurl, which airbag opens at run time for https upstreams and health checks) and
# the build stage's commands against the README.

FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --deps-only
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAIRBAG_BUILD_TESTS=OFF -DAIRBAG_BUILD_BENCH=OFF
RUN cmake --build build -j"$(nproc)" --target airbag demo-model-server
RUN strip --strip-debug build/proxy/airbag build/examples/demo-model-server/demo-model-server

FROM debian:12-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libc6 libgcc-s1 libstdc++6 \
      libabsl20220623 libre2-9 libyaml-cpp0.7 libspdlog1.10 libfmt9 \
      libevent-2.1-7 libevent-core-2.1-7 libevent-pthreads-2.1-7 libhiredis0.14 \
      libcurl4 libssl3 libnghttp2-14 libbrotli1 libzstd1 zlib1g libidn2-0 libunistring2 \
      libpsl5 librtmp1 libssh2-1 libldap-2.5-0 libsasl2-2 libgssapi-krb5-2 libkrb5-3 \
      libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libgnutls30 libhogweed6 \
      libnettle8 libgmp10 libp11-kit0 libffi8 libtasn1-6 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 airbag \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin airbag

FROM runtime-base AS demo-model-server
COPY --from=build /src/build/examples/demo-model-server/demo-model-server /usr/local/bin/demo-model-server
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/demo-model-server"]
CMD ["--listen", "0.0.0.0:8000"]

FROM runtime-base AS airbag
COPY --from=build /src/build/proxy/airbag /usr/local/bin/airbag
# A config to start with; the Helm chart mounts its own over /etc/airbag.
COPY examples/vllm/airbag.yaml /etc/airbag/airbag.yaml
USER 65532:65532
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/airbag"]
CMD ["-c", "/etc/airbag/airbag.yaml"]
