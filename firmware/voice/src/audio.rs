//! Mono 16-bit PCM in memory: the one audio shape the announcer handles. WAV in and out
//! through `hound`; the few sample operations an announcement needs (silence, gain,
//! resampling of espeak-ng's output, a synthesized chime, loudness).

use std::io::{Cursor, Read, Seek};

/// Sample rate every pack clip and every announcement share unless a pack says otherwise.
pub const DEFAULT_RATE: u32 = 16_000;

/// Mono signed 16-bit samples at a rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// Samples per second.
    pub rate: u32,
    /// The samples, mono.
    pub samples: Vec<i16>,
}

/// A WAV that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Not a readable WAV file.
    #[error("not a readable WAV file: {0}")]
    Unreadable(#[from] hound::Error),
    /// Readable, but not in the format required.
    #[error(
        "is {found}; expected mono 16-bit PCM at {expected_rate} Hz \
         (convert: sox IN.wav -r {expected_rate} -c 1 -b 16 -e signed-integer OUT.wav)"
    )]
    Format {
        /// What the file is, in words.
        found: String,
        /// The rate required.
        expected_rate: u32,
    },
}

/// The spec of every WAV we write: mono, 16-bit integer PCM.
pub fn spec(rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

fn describe(s: &hound::WavSpec) -> String {
    let channels = match s.channels {
        1 => "mono".to_string(),
        2 => "stereo".to_string(),
        n => format!("{n} channels"),
    };
    let format = match s.sample_format {
        hound::SampleFormat::Int => "PCM",
        hound::SampleFormat::Float => "float",
    };
    format!(
        "{channels} {}-bit {format} at {} Hz",
        s.bits_per_sample, s.sample_rate
    )
}

impl Audio {
    /// `ms` milliseconds of silence.
    pub fn silence(rate: u32, ms: u32) -> Audio {
        Audio {
            rate,
            samples: vec![0; (rate as u64 * ms as u64 / 1000) as usize],
        }
    }

    /// Reads a WAV that must already be mono 16-bit PCM at `rate`: a clip in any other
    /// format is refused rather than converted, so a hall learns at start, not mid-call,
    /// that a recording it dropped in is wrong.
    pub fn read_exact<R: Read>(reader: R, rate: u32) -> Result<Audio, WavError> {
        let r = hound::WavReader::new(reader)?;
        let s = r.spec();
        if s != spec(rate) {
            return Err(WavError::Format {
                found: describe(&s),
                expected_rate: rate,
            });
        }
        let samples = r.into_samples::<i16>().collect::<Result<Vec<_>, _>>()?;
        Ok(Audio { rate, samples })
    }

    /// Reads any 16-bit integer PCM WAV, mixing channels down to mono (for espeak-ng's
    /// output, which is 22 050 Hz mono).
    pub fn read_any<R: Read>(reader: R) -> Result<Audio, WavError> {
        let r = hound::WavReader::new(reader)?;
        let s = r.spec();
        if s.sample_format != hound::SampleFormat::Int
            || s.bits_per_sample != 16
            || s.sample_rate == 0
        {
            return Err(WavError::Format {
                found: describe(&s),
                expected_rate: s.sample_rate,
            });
        }
        let channels = s.channels.max(1) as usize;
        let all = r.into_samples::<i16>().collect::<Result<Vec<_>, _>>()?;
        let samples = all
            .chunks(channels)
            .map(|c| (c.iter().map(|&x| x as i32).sum::<i32>() / c.len() as i32) as i16)
            .collect();
        Ok(Audio {
            rate: s.sample_rate,
            samples,
        })
    }

    /// The whole WAV file in memory.
    pub fn to_wav(&self) -> Vec<u8> {
        let mut out = Cursor::new(Vec::with_capacity(44 + self.samples.len() * 2));
        self.write_wav(&mut out)
            .expect("writing a WAV to memory cannot fail");
        out.into_inner()
    }

    /// Writes the WAV to a seekable writer.
    pub fn write_wav<W: std::io::Write + Seek>(&self, w: W) -> Result<(), hound::Error> {
        let mut writer = hound::WavWriter::new(w, spec(self.rate))?;
        {
            let mut i16w = writer.get_i16_writer(self.samples.len() as u32);
            for &s in &self.samples {
                i16w.write_sample(s);
            }
            i16w.flush()?;
        }
        writer.finalize()
    }

    /// How long it plays.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.samples.len() as f64 / self.rate.max(1) as f64)
    }

    /// Appends another piece at the same rate.
    pub fn append(&mut self, other: &Audio) {
        debug_assert_eq!(self.rate, other.rate);
        self.samples.extend_from_slice(&other.samples);
    }

    /// Scales by `percent` (100 = as recorded), saturating rather than wrapping.
    pub fn apply_volume(&mut self, percent: u32) {
        if percent == 100 {
            return;
        }
        for s in &mut self.samples {
            *s = scale(*s, percent);
        }
    }

    /// Linear-interpolation resampling: enough for speech from espeak-ng, whose energy
    /// lies far below either Nyquist frequency.
    pub fn resample(&self, rate: u32) -> Audio {
        if rate == self.rate || self.samples.is_empty() || self.rate == 0 {
            return Audio {
                rate,
                samples: self.samples.clone(),
            };
        }
        let n = (self.samples.len() as u64 * rate as u64 / self.rate as u64) as usize;
        let step = self.rate as f64 / rate as f64;
        let last = self.samples.len() - 1;
        let samples = (0..n)
            .map(|i| {
                let pos = i as f64 * step;
                let j = (pos as usize).min(last);
                let frac = pos - j as f64;
                let a = self.samples[j] as f64;
                let b = self.samples[(j + 1).min(last)] as f64;
                (a + (b - a) * frac).round() as i16
            })
            .collect();
        Audio { rate, samples }
    }

    /// Root-mean-square level, 0.0 (silence) to 1.0 (full-scale square wave).
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self
            .samples
            .iter()
            .map(|&s| {
                let x = s as f64 / 32768.0;
                x * x
            })
            .sum();
        (sum / self.samples.len() as f64).sqrt()
    }

    /// A two-tone "ding-dong" made here, for a pack that has no chime of its own: the
    /// chime alone must always be possible, because it is what a hall hears when no
    /// speech can be made.
    pub fn synth_chime(rate: u32) -> Audio {
        let mut samples = Vec::new();
        for (freq, secs) in [(659.25_f64, 0.42_f64), (523.25, 0.65)] {
            let n = (rate as f64 * secs) as usize;
            for i in 0..n {
                let t = i as f64 / rate as f64;
                let attack = (t / 0.01).min(1.0);
                let decay = (-(t / secs) * 3.0).exp();
                let v = (2.0 * std::f64::consts::PI * freq * t).sin() * attack * decay * 0.5;
                samples.push((v * 32767.0) as i16);
            }
        }
        Audio { rate, samples }
    }
}

/// One sample scaled by a volume in percent.
pub fn scale(s: i16, percent: u32) -> i16 {
    ((s as i64 * percent as i64) / 100).clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// Repairs the sizes in a WAV header written to a pipe (espeak-ng `--stdout` cannot seek
/// back and leaves 0x7ffff000 there) so that a strict reader stops at the real end.
pub fn fix_streamed_header(bytes: &mut [u8]) {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return;
    }
    let riff = (bytes.len() - 8) as u32;
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = [bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]];
        let size = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        if &id == b"data" {
            let real = (bytes.len() - body) & !1;
            if size > real {
                bytes[pos + 4..pos + 8].copy_from_slice(&(real as u32).to_le_bytes());
            }
            return;
        }
        pos = body + size + (size & 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_claiming_zero_samples_a_second_is_refused_not_divided_by() {
        // Found by the voice_wav fuzz target: resampling it divided by zero.
        let mut bytes = Audio {
            rate: 16_000,
            samples: vec![1, 2, 3],
        }
        .to_wav();
        bytes[24..28].copy_from_slice(&0u32.to_le_bytes());
        bytes[28..32].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            Audio::read_any(Cursor::new(&bytes)),
            Err(WavError::Format { .. }) | Err(WavError::Unreadable(_))
        ));
        let silent = Audio {
            rate: 0,
            samples: vec![1, 2],
        };
        assert!(silent.resample(16_000).samples.len() <= 2);
    }

    #[test]
    fn a_wav_written_reads_back_sample_for_sample() {
        let a = Audio {
            rate: 16_000,
            samples: vec![0, 1, -1, i16::MAX, i16::MIN, 1234],
        };
        let back = Audio::read_exact(Cursor::new(a.to_wav()), 16_000).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn a_clip_at_another_rate_is_refused_with_the_conversion_to_make() {
        let a = Audio {
            rate: 22_050,
            samples: vec![0; 10],
        };
        let err = Audio::read_exact(Cursor::new(a.to_wav()), 16_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mono 16-bit PCM at 22050 Hz"), "{err}");
        assert!(err.contains("sox IN.wav -r 16000"), "{err}");
    }

    #[test]
    fn a_stereo_clip_is_refused() {
        let mut buf = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(
            &mut buf,
            hound::WavSpec {
                channels: 2,
                ..spec(16_000)
            },
        )
        .unwrap();
        for _ in 0..8 {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let err = Audio::read_exact(Cursor::new(buf.into_inner()), 16_000)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("is stereo 16-bit PCM at 16000 Hz"), "{err}");
    }

    #[test]
    fn volume_scales_and_saturates() {
        let mut a = Audio {
            rate: 8000,
            samples: vec![1000, -1000, 30000],
        };
        a.apply_volume(50);
        assert_eq!(a.samples, vec![500, -500, 15000]);
        a.apply_volume(300);
        assert_eq!(a.samples, vec![1500, -1500, i16::MAX]);
    }

    #[test]
    fn resampling_keeps_duration_and_shape() {
        let a = Audio {
            rate: 22_050,
            samples: (0..22_050).map(|i| ((i % 100) * 100) as i16).collect(),
        };
        let b = a.resample(16_000);
        assert_eq!(b.samples.len(), 16_000);
        assert!((a.rms() - b.rms()).abs() < 0.01);
    }

    #[test]
    fn a_streamed_header_is_repaired_to_the_real_length() {
        let a = Audio {
            rate: 22_050,
            samples: vec![7; 100],
        };
        let mut bytes = a.to_wav();
        bytes[4..8].copy_from_slice(&0x7fff_f024u32.to_le_bytes());
        bytes[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        assert!(Audio::read_any(Cursor::new(bytes.clone())).is_err());
        fix_streamed_header(&mut bytes);
        assert_eq!(Audio::read_any(Cursor::new(bytes)).unwrap(), a);
    }

    #[test]
    fn the_synthesized_chime_is_audible() {
        let c = Audio::synth_chime(16_000);
        assert!(c.duration().as_secs_f64() > 1.0);
        assert!(c.rms() > 0.05, "{}", c.rms());
    }
}
