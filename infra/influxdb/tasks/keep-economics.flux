// The daily economics points are already one per day: copied as they are into the
// long-term bucket. The last three days each time, so a re-run day is copied again (same
// series and timestamp: the copy is replaced, not doubled).
option task = {name: "keep-economics", every: 6h, offset: 10m}

from(bucket: "economics")
    |> range(start: -3d)
    |> to(bucket: "longterm")
