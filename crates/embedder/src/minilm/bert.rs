//! A compact BERT encoder forward pass on `ndarray` (inference only), plus mean pooling over
//! the attention mask and L2 normalisation, as sentence-transformers does for all-MiniLM-L6-v2.
//!
//! Layout per layer: fused QKV projection, scaled dot-product attention per head over the
//! unpadded keys only, output projection, residual + LayerNorm, GELU (erf) feed-forward,
//! residual + LayerNorm. Matrix products go through `ndarray`'s `dot` (matrixmultiply sgemm).

use std::path::Path;

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, Axis, concatenate, s};
use serde::Deserialize;

use super::safetensors::SafeTensors;
use crate::error::{Error, Result};

/// The fields of `config.json` the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) max_position_embeddings: usize,
    pub(crate) type_vocab_size: usize,
    pub(crate) layer_norm_eps: f32,
    pub(crate) hidden_act: String,
    #[serde(default = "absolute")]
    pub(crate) position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    pub(crate) fn from_file(path: &Path) -> Result<Self> {
        let config: Self = super::read_json(path)?;
        let bad = |detail: String| Error::ModelFormat {
            path: path.to_owned(),
            detail,
        };
        if config.hidden_act != "gelu" {
            return Err(bad(format!(
                "hidden_act is `{}`, only `gelu` is supported",
                config.hidden_act
            )));
        }
        if config.position_embedding_type != "absolute" {
            return Err(bad(format!(
                "position_embedding_type is `{}`, only `absolute` is supported",
                config.position_embedding_type
            )));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            )));
        }
        Ok(config)
    }
}

struct LayerNorm {
    gamma: Array1<f32>,
    beta: Array1<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(st: &SafeTensors, prefix: &str, dim: usize, eps: f32) -> Result<Self> {
        Ok(Self {
            gamma: st.vector(&format!("{prefix}.weight"), dim)?,
            beta: st.vector(&format!("{prefix}.bias"), dim)?,
            eps,
        })
    }

    fn apply_rows(&self, x: &mut Array2<f32>) {
        for row in x.rows_mut() {
            self.apply(row);
        }
    }

    fn apply(&self, mut row: ArrayViewMut1<'_, f32>) {
        let n = row.len() as f32;
        let mean = row.sum() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + self.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// A dense layer. PyTorch stores the weight as `[out, in]`; it is kept transposed (`[in, out]`,
/// row-major) so `x.dot(&w) + b` computes `x W^T + b`: the sgemm packs a row-major right-hand
/// side faster (measured: 6.7-7.2 ms vs 8.0 ms on-CPU per query with a transposed view).
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

impl Linear {
    fn load(st: &SafeTensors, prefix: &str, input: usize, output: usize) -> Result<Self> {
        Ok(Self {
            w: st.matrix_transposed(&format!("{prefix}.weight"), output, input)?,
            b: st.vector(&format!("{prefix}.bias"), output)?,
        })
    }

    fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut y = x.dot(&self.w);
        y += &self.b;
        y
    }
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: LayerNorm,
}

/// The loaded encoder.
pub(crate) struct Bert {
    config: BertConfig,
    word: Array2<f32>,
    position: Array2<f32>,
    token_type: Array2<f32>,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Loads weights named as in `transformers`' `BertModel` without a prefix
    /// (`embeddings.*`, `encoder.layer.N.*`); the pooler is not used.
    pub(crate) fn load(config: BertConfig, st: &SafeTensors) -> Result<Self> {
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = Linear::load(st, &format!("{p}.attention.self.query"), h, h)?;
            let k = Linear::load(st, &format!("{p}.attention.self.key"), h, h)?;
            let v = Linear::load(st, &format!("{p}.attention.self.value"), h, h)?;
            let qkv = Linear {
                w: concatenate(Axis(1), &[q.w.view(), k.w.view(), v.w.view()])
                    .expect("q, k and v weights have the same number of rows"),
                b: concatenate(Axis(0), &[q.b.view(), k.b.view(), v.b.view()])
                    .expect("1-d biases concatenate"),
            };
            layers.push(Layer {
                qkv,
                attn_out: Linear::load(st, &format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: LayerNorm::load(st, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                ffn_in: Linear::load(
                    st,
                    &format!("{p}.intermediate.dense"),
                    h,
                    config.intermediate_size,
                )?,
                ffn_out: Linear::load(
                    st,
                    &format!("{p}.output.dense"),
                    config.intermediate_size,
                    h,
                )?,
                ffn_norm: LayerNorm::load(st, &format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            word: st.matrix("embeddings.word_embeddings.weight", config.vocab_size, h)?,
            position: st.matrix(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings,
                h,
            )?,
            token_type: st.matrix(
                "embeddings.token_type_embeddings.weight",
                config.type_vocab_size,
                h,
            )?,
            embed_norm: LayerNorm::load(st, "embeddings.LayerNorm", h, eps)?,
            layers,
            config,
        })
    }

    pub(crate) fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    pub(crate) fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// Encodes a batch of token-id sequences (each `[CLS] ... [SEP]`, at most
    /// `max_positions` long, ids below `vocab_size`) and returns one mean-pooled, L2-normalised
    /// row per sequence. Shorter sequences are padded to the longest one in the batch; padded
    /// positions are masked out of attention and pooling.
    pub(crate) fn embed_batch(&self, batch: &[&[u32]], pad_id: u32) -> Array2<f32> {
        let hidden = self.config.hidden_size;
        let len = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let mut x = Array2::<f32>::zeros((batch.len() * len, hidden));
        for (i, ids) in batch.iter().enumerate() {
            for t in 0..len {
                let id = ids.get(t).copied().unwrap_or(pad_id) as usize;
                let mut row = x.row_mut(i * len + t);
                row.assign(&self.word.row(id));
                row += &self.position.row(t);
                row += &self.token_type.row(0);
            }
        }
        self.embed_norm.apply_rows(&mut x);
        let lengths: Vec<usize> = batch.iter().map(|ids| ids.len()).collect();
        for layer in &self.layers {
            x = self.layer_forward(layer, x, len, &lengths);
        }
        let mut pooled = Array2::<f32>::zeros((batch.len(), hidden));
        for (i, &n) in lengths.iter().enumerate() {
            let mut out = pooled.row_mut(i);
            if n > 0 {
                let rows = x.slice(s![i * len..i * len + n, ..]);
                out.assign(&rows.sum_axis(Axis(0)));
                out /= n as f32;
            }
            let norm = out.dot(&out).sqrt().max(1e-12);
            out /= norm;
        }
        pooled
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        x: Array2<f32>,
        len: usize,
        lengths: &[usize],
    ) -> Array2<f32> {
        let hidden = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let head_dim = hidden / heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let qkv = layer.qkv.apply(x.view());
        let mut context = Array2::<f32>::zeros((x.nrows(), hidden));
        for (i, &n) in lengths.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let rows = i * len..i * len + len;
            for h in 0..heads {
                let c = h * head_dim;
                let q = qkv.slice(s![rows.clone(), c..c + head_dim]);
                let k = qkv.slice(s![i * len..i * len + n, hidden + c..hidden + c + head_dim]);
                let v = qkv.slice(s![
                    i * len..i * len + n,
                    2 * hidden + c..2 * hidden + c + head_dim
                ]);
                let mut scores = q.dot(&k.t());
                for mut row in scores.rows_mut() {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
                    let mut sum = 0.0;
                    row.mapv_inplace(|v| {
                        let e = (v * scale - max).exp();
                        sum += e;
                        e
                    });
                    row /= sum;
                }
                context
                    .slice_mut(s![rows.clone(), c..c + head_dim])
                    .assign(&scores.dot(&v));
            }
        }
        let mut attended = layer.attn_out.apply(context.view());
        attended += &x;
        layer.attn_norm.apply_rows(&mut attended);
        let mut inner = layer.ffn_in.apply(attended.view());
        inner.mapv_inplace(gelu);
        let mut out = layer.ffn_out.apply(inner.view());
        out += &attended;
        layer.ffn_norm.apply_rows(&mut out);
        out
    }
}

/// GELU with the exact erf form, as `transformers`' "gelu".
fn gelu(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// erf via the complementary error function approximation of Numerical Recipes (`erfcc`,
/// fractional error below 1.2e-7 everywhere), ample for f32 activations.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // values from tables of the error function
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265_0),
            (-1.0, -0.842_700_792_9),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn gelu_is_x_phi_x() {
        assert_eq!(gelu(0.0), 0.0);
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
    }
}
