"""A local Hugging Face checkpoint folder: config.json, safetensors weights (one file, or shards listed in
model.safetensors.index.json) and tokenizer files. Tensors are read on demand, one at a time."""

import json
import os

import numpy as np

from .errors import ConverterError
from .safetensors_io import SafetensorsFile

INDEX = "model.safetensors.index.json"


class Checkpoint:
    def __init__(self, path: str):
        if not os.path.isdir(path):
            raise ConverterError(f"{path}: no such folder")
        self.path = path
        config_path = os.path.join(path, "config.json")
        if not os.path.isfile(config_path):
            raise ConverterError(f"{path} is not a Hugging Face checkpoint: it has no config.json")
        try:
            with open(config_path) as f:
                self.config = json.load(f)
        except OSError as e:
            raise ConverterError(f"{config_path}: {e.strerror}") from None
        except ValueError as e:
            raise ConverterError(f"{config_path}: not valid JSON ({e})") from None
        if not isinstance(self.config, dict):
            raise ConverterError(f"{config_path}: a JSON {type(self.config).__name__}, not an object")
        self.files: dict[str, SafetensorsFile] = {}  # shard file name -> its file
        self.location: dict[str, SafetensorsFile] = {}  # tensor name -> the shard holding it
        for shard in self.shard_names():
            st = self.files[shard] = SafetensorsFile(os.path.join(path, shard))
            self.location.update((name, st) for name in st.names())

    def shard_names(self) -> list[str]:
        index_path = os.path.join(self.path, INDEX)
        if os.path.isfile(index_path):
            try:
                with open(index_path) as f:
                    weight_map = json.load(f).get("weight_map", {})
            except (ValueError, AttributeError):
                weight_map = None
            if not isinstance(weight_map, dict) or not all(isinstance(s, str) for s in weight_map.values()):
                raise ConverterError(f"{index_path}: not an index (an object whose weight_map maps tensors to files)")
            shards = sorted(set(weight_map.values()))
        else:
            shards = sorted(f for f in os.listdir(self.path) if f.endswith(".safetensors"))
        if not shards:
            raise ConverterError(f"{self.path} has no .safetensors weights")
        missing = [s for s in shards if not os.path.isfile(os.path.join(self.path, s))]
        if missing:
            raise ConverterError(f"{self.path}: weight shard {missing[0]} listed in {INDEX} is missing")
        return shards

    def has(self, name: str) -> bool:
        return name in self.location

    def dtype(self, name: str) -> str:
        return self.location[name].dtype(name)

    def info(self, name: str, dtypes: tuple[str, ...], shape: tuple[int, ...]) -> str:
        """Checks a tensor exists with one of dtypes and the given shape; returns its dtype."""
        if name not in self.location:
            raise ConverterError(f"{self.path}: tensor {name} is missing")
        st = self.location[name]
        if st.dtype(name) not in dtypes:
            raise ConverterError(f"{name}: dtype {st.dtype(name)}, expected {' or '.join(dtypes)}")
        if st.shape(name) != tuple(shape):
            raise ConverterError(f"{name}: shape {list(st.shape(name))}, expected {list(shape)}")
        return st.dtype(name)

    def raw(self, name: str) -> np.ndarray:
        return self.location[name].raw(name)

    def float32(self, name: str) -> np.ndarray:
        return self.location[name].float32(name)
