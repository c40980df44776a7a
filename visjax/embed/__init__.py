"""Embeddings of data and of any layer's activations: PCA, t-SNE in JAX, UMAP, quality measures.

:func:`pca` (centred SVD, explained variance, whitening) and :func:`tsne` (perplexity-calibrated
k-nearest-neighbour affinities, exact or FFT-interpolated gradients) run in JAX on CPU and GPU;
:func:`umap` wraps umap-learn (the optional extra ``visjax[umap]``). :func:`trustworthiness`
(Venna & Kaski) and :func:`knn_accuracy` (leave-one-out k-NN) measure how well an embedding keeps
neighbourhoods; :func:`embed_layer` embeds a model layer's activations; :func:`export_projector`
writes the TensorBoard projector's files.
"""

from visjax.embed.layer import embed_layer as embed_layer
from visjax.embed.pca import PCA as PCA
from visjax.embed.pca import pca as pca
from visjax.embed.projector import export_projector as export_projector
from visjax.embed.quality import knn_accuracy as knn_accuracy
from visjax.embed.quality import trustworthiness as trustworthiness
from visjax.embed.tsne import TSNE as TSNE
from visjax.embed.tsne import tsne as tsne
from visjax.embed.umap import umap as umap

__all__ = [
    "PCA",
    "TSNE",
    "embed_layer",
    "export_projector",
    "knn_accuracy",
    "pca",
    "trustworthiness",
    "tsne",
    "umap",
]
