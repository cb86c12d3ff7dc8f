"""Single-label loss and accuracy that take class ids or soft targets.

Training with mixup turns single-label targets into mixed one-hot rows;
evaluation and most user data give integer class ids. One loss and one
accuracy take either, so `ASTClassifier.compile()`'s defaults serve both.
The rule: targets with the logits' rank and width (`(batch, classes)`,
`classes > 1`) are probabilities; anything else (`(batch,)`, `(batch, 1)`)
holds class ids.
"""

import keras
from keras import ops


def _soft_targets(y_true, y_pred):
    return (len(y_true.shape) == len(y_pred.shape)
            and y_pred.shape[-1] not in (None, 1)
            and y_true.shape[-1] == y_pred.shape[-1])


def _class_ids(y_true):
    if len(y_true.shape) > 1:
        y_true = ops.reshape(y_true, (-1,))
    return ops.cast(y_true, "int32")


def softmax_crossentropy(y_true, y_pred):
    """Cross-entropy of logits against class ids or probability rows."""
    if _soft_targets(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true, y_pred,
                                                     from_logits=True)
    return keras.losses.sparse_categorical_crossentropy(
        _class_ids(y_true), y_pred, from_logits=True)


def top1_accuracy(y_true, y_pred):
    """1 where the top logit is the target class (or the most likely one)."""
    target = (ops.argmax(y_true, axis=-1) if _soft_targets(y_true, y_pred)
              else _class_ids(y_true))
    return ops.cast(
        ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"),
                  ops.cast(target, "int32")),
        "float32",
    )


@keras.saving.register_keras_serializable(package="keras_ast")
class SoftmaxCrossentropy(keras.losses.Loss):
    """Softmax cross-entropy on logits, for class ids or soft targets.

    Examples:
    >>> loss = SoftmaxCrossentropy()
    >>> float(loss(np.array([1]), np.array([[0.0, 5.0]]))) < 0.01
    True
    """

    def __init__(self, name="softmax_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return softmax_crossentropy(y_true, y_pred)


@keras.saving.register_keras_serializable(package="keras_ast")
class SoftmaxAccuracy(keras.metrics.MeanMetricWrapper):
    """Top-1 accuracy for class ids or soft targets.

    Examples:
    >>> metric = SoftmaxAccuracy()
    >>> metric.update_state(np.array([[0.3, 0.7]]), np.array([[0.0, 1.0]]))
    >>> float(metric.result())
    1.0
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(top1_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
