SELECT * FROM pulse_like_batch($1::int8[], $2::int8[], $3::text[], $4::text[], $5::timestamp,
  $6::text, $7::int8, $8::int8, $9::int8)
