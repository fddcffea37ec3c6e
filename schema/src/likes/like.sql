SELECT * FROM pulse_like($1::int8, $2::int8, $3::timestamp, $4::text, $5::text, $6::int8, $7::text,
  $8::int8, $9::int8)
