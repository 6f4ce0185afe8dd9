# Sourced by bootstrap.sh: generate the gRPC stubs (with .pyi type stubs) from serving/protos.
# They sit beside the .proto, are git-ignored, and are rebuilt whenever a .proto is newer.
generate_protos() {
    local proto out
    for proto in "$ROOT"/serving/protos/*.proto; do
        out="${proto%.proto}_pb2.py"
        if [ ! -f "$out" ] || [ "$proto" -nt "$out" ]; then
            (cd "$ROOT" && "$VENV/bin/python" -m grpc_tools.protoc -I . \
                --python_out=. --pyi_out=. --grpc_python_out=. \
                "serving/protos/$(basename "$proto")")
        fi
    done
}
