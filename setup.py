"""Encore: a replay-centric toolkit for distributed reinforcement learning."""

import setuptools

setuptools.setup(
    name="encore-rl",
    version="0.1.0",
    description="Replay-centric distributed RL on Reverb, with Launchpad- and Acme-style layers.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["agents", "agents.*", "replay", "replay.*", "launch", "launch.*"]),
    python_requires=">=3.10,<3.12",
    install_requires=[
        "dm-reverb==0.14.0",
        "tensorflow==2.15.1",
        "numpy>=1.23,<2",
        "protobuf>=4.21,<5",
        "dm-env>=1.6",
        "dm-tree>=0.1.8",
        "gymnasium>=1.3",  # Taxi-v4 and CliffWalking-v1 (tabular Q-learning); it needs Python >= 3.10.
        "cloudpickle>=2.2",
        "absl-py>=1.0",
        "grpcio>=1.48",
        "matplotlib>=3.6",
        "tensorboard>=2.15",  # Its event writer (TensorFlow's own dependency; loggers use it without TensorFlow).
        "setproctitle>=1.3",  # local_mp: a node forked from the preloading process shows its label in `ps`.
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2.1", "psutil>=5.9", "ruff==0.17.6"],
        # The newest Ray that resolves with the TensorFlow 2.15 pins (protobuf < 5, numpy < 2); it has token auth.
        "ray": ["ray==2.60.0"],
        # The SB3 / sb3-contrib baselines (e.g. RecurrentPPO). torch is pinned: other versions pull CUDA builds.
        "bench": ["stable-baselines3>=2.3", "sb3-contrib>=2.3", "torch==2.13.0"],
    },
    entry_points={"console_scripts": ["encore-inspect=agents.inspect:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Operating System :: POSIX :: Linux",
    ],
)
