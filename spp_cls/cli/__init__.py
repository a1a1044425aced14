"""What train.py and evaluate.py run: Hydra configs in, Lightning objects built, results written."""
