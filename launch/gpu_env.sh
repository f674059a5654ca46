# Sourced by the launch/gpu_*.sh scripts: installs the wheels in .whl (the
# packages a GPU machine lacks: clu, ml_collections, tensorboardX) when
# present, sets the environment and prints the machine's JAX and GPU.
# Make .whl once on a machine with PyPI (pure-Python wheels; git ignores the
# folder) and copy it to the GPU machine with the checkout:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     clu==0.0.12 ml_collections==1.1.0 tensorboardX==2.6.5
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # dvn_jax from this checkout
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L 2>/dev/null
python3 -c 'import jax, flax, optax, orbax.checkpoint as o; print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, jax.devices())' || exit 1
