# A static binary (musl) in an empty image, running as nobody. Build: docker build -t prom-adapter .
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev gcc
WORKDIR /src
COPY . .
# The same command as `make release`.
RUN cargo build --release --locked && strip target/release/prom-adapter

FROM scratch
COPY --from=build /src/target/release/prom-adapter /prom-adapter
USER 65534:65534
EXPOSE 6443
ENTRYPOINT ["/prom-adapter"]
CMD ["serve"]
