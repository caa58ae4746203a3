//! Walking DHCP options: PAD and END, and RFC 3396 concatenation of split options.

use crate::{Error, Result};

use super::codes::opt;

/// One option instance as it appears on the wire: code and data (no PAD or END).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// Option code.
    pub code: u8,
    /// Option data, without code and length bytes.
    pub data: &'a [u8],
}

/// Iterates the options of one area (the options field, or `file`/`sname` when overloaded).
///
/// PAD is skipped; END or the end of the area stops the walk (a missing END is tolerated, as
/// every deployed server does). An option whose length runs past the area yields
/// [`Error::Malformed`] once, then the iterator ends.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    area: &'a [u8],
    pos: usize,
}

impl<'a> OptionIter<'a> {
    /// Walks `area` from its first byte.
    pub const fn new(area: &'a [u8]) -> OptionIter<'a> {
        OptionIter { area, pos: 0 }
    }

    /// Like `next`, but returns the data as `(code, start, len)` within the area.
    pub(crate) fn next_span(&mut self) -> Option<Result<(u8, usize, usize)>> {
        let area = self.area;
        while self.pos < area.len() {
            let code = area[self.pos];
            match code {
                opt::PAD => self.pos += 1,
                opt::END => break,
                _ => {
                    let Some(&len) = area.get(self.pos + 1) else {
                        self.pos = area.len();
                        return Some(Err(Error::Malformed));
                    };
                    let start = self.pos + 2;
                    let end = start + usize::from(len);
                    if end > area.len() {
                        self.pos = area.len();
                        return Some(Err(Error::Malformed));
                    }
                    self.pos = end;
                    return Some(Ok((code, start, usize::from(len))));
                }
            }
        }
        self.pos = area.len();
        None
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<RawOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let area = self.area;
        self.next_span().map(|r| {
            r.map(|(code, start, len)| RawOption {
                code,
                data: &area[start..start + len],
            })
        })
    }
}

/// The value of one option after RFC 3396 concatenation: every instance of the code, in the
/// order options, `file`, `sname`.
///
/// Almost every option arrives in one piece; [`Self::as_slice`] then borrows it directly. A split
/// option is read through [`Self::fragments`], [`Self::bytes`], or copied with
/// [`Self::contiguous`] into a caller's scratch buffer. Nothing here allocates.
#[derive(Debug, Clone, Copy)]
pub struct OptionValue<'a> {
    code: u8,
    areas: [&'a [u8]; 3],
    first_area: usize,
    first_start: usize,
    first_len: usize,
    multiple: bool,
}

impl<'a> OptionValue<'a> {
    pub(crate) fn new(
        code: u8,
        areas: [&'a [u8]; 3],
        (first_area, first_start, first_len): (usize, usize, usize),
        multiple: bool,
    ) -> OptionValue<'a> {
        OptionValue {
            code,
            areas,
            first_area,
            first_start,
            first_len,
            multiple,
        }
    }

    /// The option code.
    pub const fn code(&self) -> u8 {
        self.code
    }

    /// The data, if the option arrived in one piece.
    pub fn as_slice(&self) -> Option<&'a [u8]> {
        if self.multiple {
            None
        } else {
            Some(self.first())
        }
    }

    fn first(&self) -> &'a [u8] {
        &self.areas[self.first_area][self.first_start..self.first_start + self.first_len]
    }

    /// Whether the option was split into several instances (RFC 3396).
    pub const fn is_split(&self) -> bool {
        self.multiple
    }

    /// The instances of this option, in aggregate order.
    pub fn fragments(&self) -> Fragments<'a> {
        Fragments {
            value: *self,
            area: self.first_area,
            iter: None,
            first_done: false,
        }
    }

    /// The concatenated data, byte by byte.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        self.fragments().flat_map(|f| f.iter().copied())
    }

    /// Total length of the concatenated data.
    pub fn len(&self) -> usize {
        if self.multiple {
            self.fragments().map(<[u8]>::len).sum()
        } else {
            self.first_len
        }
    }

    /// Whether the concatenated data is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The concatenated data as one slice: borrowed when the option came in one piece, else
    /// copied into `scratch` ([`Error::NoSpace`] if it does not fit).
    pub fn contiguous<'s>(&self, scratch: &'s mut [u8]) -> Result<&'s [u8]>
    where
        'a: 's,
    {
        if !self.multiple {
            return Ok(self.first());
        }
        let mut n = 0;
        for f in self.fragments() {
            let dst = scratch.get_mut(n..n + f.len()).ok_or(Error::NoSpace)?;
            dst.copy_from_slice(f);
            n += f.len();
        }
        Ok(&scratch[..n])
    }

    /// The concatenated data as a fixed-size array, if it has exactly `N` bytes.
    pub fn to_array<const N: usize>(&self) -> Option<[u8; N]> {
        if !self.multiple {
            return self.first().try_into().ok();
        }
        let mut out = [0u8; N];
        let mut n = 0;
        for b in self.bytes() {
            *out.get_mut(n)? = b;
            n += 1;
        }
        (n == N).then_some(out)
    }
}

/// Iterator over the instances of a split option; see [`OptionValue::fragments`].
#[derive(Debug, Clone)]
pub struct Fragments<'a> {
    value: OptionValue<'a>,
    area: usize,
    iter: Option<OptionIter<'a>>,
    first_done: bool,
}

impl<'a> Iterator for Fragments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let v = &self.value;
        if !self.first_done {
            self.first_done = true;
            if v.multiple {
                let mut it = OptionIter::new(v.areas[v.first_area]);
                it.pos = v.first_start + v.first_len;
                self.iter = Some(it);
            }
            return Some(v.first());
        }
        loop {
            let it = self.iter.as_mut()?;
            match it.next_span() {
                Some(Ok((code, start, len))) if code == v.code => {
                    return Some(&v.areas[self.area][start..start + len]);
                }
                Some(Ok(_)) => {}
                // Areas were validated when the message was indexed; an error cannot occur here,
                // and ending the walk is the safe answer if it somehow did.
                Some(Err(_)) => return None,
                None => {
                    self.area += 1;
                    self.iter = Some(OptionIter::new(v.areas.get(self.area)?));
                }
            }
        }
    }
}
